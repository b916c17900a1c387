"""Line coverage per package from coverage's JSON report: `python tests/coverage_report.py coverage.json`.

`make coverage` prints this after the suite: one line per package of libs/
and services/ (a package is the folder below them, `libs/service`,
`services/auth`, ...; a module directly in libs/ is its own), then the total.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import PurePosixPath


def package_of(path: str) -> str:
    parts = PurePosixPath(path).parts
    return "/".join(parts[:2]).removesuffix(".py") if len(parts) >= 2 else path


def main(report_path: str) -> None:
    files = json.load(open(report_path))["files"]
    statements: dict[str, int] = defaultdict(int)
    covered: dict[str, int] = defaultdict(int)
    for path, data in files.items():
        if not data["summary"]["num_statements"]:
            continue  # an empty __init__.py
        package = package_of(path)
        statements[package] += data["summary"]["num_statements"]
        covered[package] += data["summary"]["covered_lines"]
    width = max(map(len, statements), default=10)
    print(f"\n{'package':<{width}}  {'lines':>6}  {'missed':>6}  cover")
    for package in sorted(statements, key=lambda p: (p.split("/")[0], p)):
        total, hit = statements[package], covered[package]
        print(f"{package:<{width}}  {total:>6}  {total - hit:>6}  {100 * hit / total if total else 100:5.1f} %")
    for root in ("libs", "services"):
        total = sum(n for p, n in statements.items() if p.startswith(root + "/"))
        hit = sum(n for p, n in covered.items() if p.startswith(root + "/"))
        if total:
            print(f"{root + '/ (all)':<{width}}  {total:>6}  {total - hit:>6}  {100 * hit / total:5.1f} %")
    total, hit = sum(statements.values()), sum(covered.values())
    print(f"{'total':<{width}}  {total:>6}  {total - hit:>6}  {100 * hit / total if total else 100:5.1f} %")


if __name__ == "__main__":
    main(sys.argv[1])

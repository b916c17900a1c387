"""The alert rules as Prometheus and promtool read them: the `spec` of the PrometheusRule in
deploy/k8s/base/monitoring/prometheus-rules.yaml, written out as a plain rule file (`groups:`).

`make test` installs Debian's `prometheus` package (Makefile, `.dev/.prometheus`), which ships `promtool` and
`prometheus`.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import yaml

from libs.devstack.config import REPO_ROOT

RULES = REPO_ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheus-rules.yaml"
# promtool's unit tests of the rules; their `rule_files` names RULE_FILE, next to them.
PROMTOOL_TESTS = REPO_ROOT / "tests" / "alerts" / "prometheus-rules.test.yml"
RULE_FILE = "harbour-id.rules.yml"
DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")


def binary(name: str) -> str:
    """The path of `promtool` or `prometheus`; fails the test (never skips it) when the package is missing."""
    path = shutil.which(name)
    assert path, f"{name} is missing: `make test` installs Debian's prometheus package (Makefile, .dev/.prometheus)"
    return path


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["spec"]["groups"]


def alerts() -> dict[str, dict]:
    """Every alerting rule by its name."""
    return {rule["alert"]: rule for group in rule_groups() for rule in group["rules"] if "alert" in rule}


def write_rule_file(directory: Path, groups: list[dict] | None = None, *, pending_for: str | None = None) -> Path:
    """Write `groups` (the project's by default) as `directory/RULE_FILE`.

    `pending_for` replaces every alert's `for:` (a test's Prometheus cannot wait the real ten minutes); the
    expressions, labels and annotations stay the project's.
    """
    groups = copy.deepcopy(rule_groups() if groups is None else groups)
    if pending_for is not None:
        assert DURATION.match(pending_for), pending_for
        for group in groups:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = pending_for
    path = directory / RULE_FILE
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path

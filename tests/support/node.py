"""Node.js for the tests that run JavaScript: the machine's own, or the one `make test` unpacked to .dev/bin from a
pinned PyPI wheel when the machine had no Node.js 20+ with npm (Makefile, .dev/.node)."""

from __future__ import annotations

import shutil
from pathlib import Path

DEV_BIN = Path(__file__).resolve().parents[2] / ".dev" / "bin"


def tool(name: str) -> str:
    """.dev/bin's node or npm when `make test` put them there, else the machine's; a test without it fails."""
    found = str(DEV_BIN / name) if (DEV_BIN / name).is_file() else shutil.which(name)
    assert found, f"{name} is not installed: `make test` installs Node.js 20+ and npm (.dev/.node)"
    return found

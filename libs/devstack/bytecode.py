"""The platform's bytecode, compiled before its processes start, at the optimisation level they run at.

The services run under `python -OO` (PYTHONOPTIMIZE=2 in their environment: config.py's `service_env`): docstrings
and asserts are left out of their memory, ~3 MB a process (docs/operations.md, idle RSS). A process that finds no
.pyc for its level, or a stale one, compiles the source at import and keeps the compiler's garbage in its heap (~2 MB
more, measured); where bytecode is never written (PYTHONDONTWRITEBYTECODE) that would be at every start. So the stack
compiles its own folders first, as an installed image has them; `make install` does the same for the virtualenv
and, where it may write there, the standard library.
"""

from __future__ import annotations

import compileall

from .config import REPO_ROOT, SERVICE_OPTIMIZE

PLATFORM_FOLDERS = ("libs", "services", "clients")


def compile_platform() -> None:
    """Fresh .pyc files for the platform's own modules at the services' level (only stale or missing ones are written)."""
    for folder in PLATFORM_FOLDERS:
        compileall.compile_dir(REPO_ROOT / folder, quiet=1, optimize=SERVICE_OPTIMIZE)

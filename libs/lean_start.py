"""What a service process leaves out when it starts: optional extras other libraries load only because they are there.

structlog imports `rich` (and with it `pygments`) for its console renderer's tracebacks, and `greenlet` for its
deprecated greenlet-local context, whenever they are installed — as they are in the development environment,
brought by the test tools (schemathesis, playwright). A service renders JSON and never uses either; loading them
cost each process about 5 MB of its memory. A service's entry point calls `leave_out_optional_extras()` before
anything else is imported; tests and tools that import the services keep whatever they need.
"""

from __future__ import annotations

import sys

NOT_FOR_SERVICES = ("rich", "greenlet")


def leave_out_optional_extras() -> None:
    """Make `import rich` / `import greenlet` fail in this process, as if they were not installed."""
    for name in NOT_FOR_SERVICES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not available" marker

"""What the platform's processes warned about while a failed test ran: printed with the failure.

A CI run leaves only its output; a 503 or a missing event there says little without the services' own account
of the moment (a database over its deadline, an upstream marked down, a consumer retrying). Each process logs
JSON lines to the stack's log folder; the warnings and errors timestamped from the test's start are shown.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

SHOWN = 40
EXCEPTION_TAIL = 600


def warnings_since(log_dir: Path, since_epoch_s: float) -> list[str]:
    """Every process's warning and error lines from `since_epoch_s` on, oldest first, the last SHOWN of them."""
    found: list[tuple[str, str]] = []
    for log_file in sorted(log_dir.glob("*.log")):
        for line in log_file.read_text(errors="replace").splitlines():
            if not line.startswith("{") or ('"warning"' not in line and '"error"' not in line):
                continue
            try:
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            except (ValueError, KeyError, TypeError):
                continue
            if entry.get("level") not in ("warning", "error") or at.timestamp() < since_epoch_s:
                continue
            if "exception" in entry:
                entry["exception"] = "…" + str(entry["exception"])[-EXCEPTION_TAIL:]
            found.append((entry["timestamp"], f"{log_file.stem}: {json.dumps(entry, ensure_ascii=False)}"))
    return [text for _, text in sorted(found)[-SHOWN:]]

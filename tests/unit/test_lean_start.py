"""What a service process leaves out of its memory: structlog's optional extras everywhere, pymongo in the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from libs.lean_start import leave_out_optional_extras
leave_out_optional_extras()
import {module}
print(json.dumps(sorted(name for name in ("rich", "pygments", "greenlet", "pymongo", "PIL", "segno")
                        if sys.modules.get(name) is not None)))
"""


def loaded_by(module: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_gateway_loads_neither_the_database_driver_nor_structlogs_extras():
    assert loaded_by("services.gateway.app") == []


def test_auth_loads_pillow_and_segno_only_when_it_needs_them():
    assert loaded_by("services.auth.app") == ["pymongo"]


def test_an_imported_event_name_still_resolves():
    from libs.events import OUTBOX_RELAY, CloudEvent, install_consumer  # noqa: F401  (lazy exports, PEP 562)
    import libs.events

    assert libs.events.Topic.__module__ == "libs.events.topics"

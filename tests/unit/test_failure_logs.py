"""The failure report's excerpt of the platform's logs: warnings and errors from the test's start, oldest first."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from tests.support.failure_logs import warnings_since


def _line(at: str, level: str, event: str, **extra) -> str:
    return json.dumps({"event": event, "level": level, "timestamp": at, **extra})


def test_only_warnings_and_errors_from_the_start_are_shown_in_time_order(tmp_path):
    (tmp_path / "auth.log").write_text("\n".join([
        _line("2026-12-03T09:00:00.000000Z", "warning", "before the test"),
        _line("2026-12-03T09:00:05.000000Z", "info", "ordinary"),
        _line("2026-12-03T09:00:07.000000Z", "warning", "dependency unavailable", dependency="database"),
        "not json at all: a crash's stderr",
    ]))
    (tmp_path / "gateway.log").write_text(_line("2026-12-03T09:00:06.000000Z", "error", "unhandled error",
                                                exception="Traceback...\n" + "x" * 5000 + "the cause"))
    start = datetime(2026, 12, 3, 9, 0, 1, tzinfo=timezone.utc).timestamp()

    shown = warnings_since(tmp_path, start)

    assert [line.split(":", 1)[0] for line in shown] == ["gateway", "auth"]
    assert "unhandled error" in shown[0] and shown[0].endswith('the cause"}') and len(shown[0]) < 1000
    assert '"dependency": "database"' in shown[1]

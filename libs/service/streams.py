"""Live streams (server-sent events) a device holds open: how many at once, and when an open one must end.

Shared by notify's inbox stream and auth's approvals stream. A stream is a
held connection; a device token (10 minutes) could otherwise open them
without bound. Each device gets a few at once per process; one more is
refused (429, too-many-streams) rather than closing the oldest, so a stolen
token cannot push the citizen's own phone off its stream. A stream ends when
its device token expires or is revoked (device, token or account): it was
authorised once, at its start, and must not outlive that.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from libs.errors import TooManyRequests
from libs.revocation import RevocationList

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class TooManyStreams(TooManyRequests):
    slug, title = "too-many-streams", "Too many streams"
    retry_after = 5


class StreamSlots:
    """Open streams per device in this process."""

    def __init__(self, per_device: int) -> None:
        self.per_device = per_device
        self.open: Counter[str] = Counter()

    def take(self, device_id: str) -> bool:
        if self.open[device_id] >= self.per_device:
            return False
        self.open[device_id] += 1
        return True

    def give_back(self, device_id: str) -> None:
        self.open[device_id] -= 1
        if self.open[device_id] <= 0:
            del self.open[device_id]


def end_reason(claims: dict[str, Any], revocations: RevocationList, now: float | None = None) -> str | None:
    """Why an open stream authorised by these claims must close now, or None."""
    now = time.time() if now is None else now
    if now >= float(claims.get("exp", 0)):
        return "the device token has expired"
    return revocations.refusal(claims, now)

"""A circuit breaker per upstream: stop sending requests to a service that keeps failing.

closed → (N consecutive connection failures or timeouts, or one failed
connection of the background probe: `trip`) → open: answer 503 at once for
`open_s` → half-open: let one request through; success (or an answered probe)
closes, failure opens again. HTTP answers from the upstream, even 5xx, count
as "reachable": the breaker protects against dead services, not against errors.
"""

from __future__ import annotations

import time


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int = 5, open_s: float = 5.0) -> None:
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "open" if time.monotonic() - self.opened_at < self.open_s else "half_open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def retry_after_s(self) -> int:
        if self.opened_at is None:
            return 0
        return max(1, int(self.open_s - (time.monotonic() - self.opened_at)) + 1)

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_in_flight = False

    def failed(self) -> None:
        self.failures += 1
        self._trial_in_flight = False
        if self.opened_at is not None or self.failures >= self.failure_threshold:
            self.opened_at = time.monotonic()

    def trip(self) -> None:
        """Open now: the upstream cannot be connected to (the health probe saw it)."""
        self.failures = max(self.failures, self.failure_threshold)
        self._trial_in_flight = False
        self.opened_at = time.monotonic()

"""The clock seam: code asks `clock.now()` instead of `datetime.now(UTC)`, so tests can move time.

Every service context carries a `clock` (a `SystemClock` in production).
Pure functions take the instant as a parameter (`now`, or an `*_at_time`
variant, as pyca/cryptography does) rather than a clock.

    clock = FrozenClock(datetime(2025, 1, 1, tzinfo=UTC))
    ctx = ServiceContext(..., clock=clock)
    clock.advance(301)           # past a five-minute lifetime, without sleeping
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware in UTC."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FrozenClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime.now(UTC)
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        """Moves time forward (`advance(90)`, `advance(minutes=5)`) and returns the new instant."""
        step = timedelta(seconds=seconds, **delta)
        if step < timedelta(0):
            raise ValueError("time only moves forward")
        self._now += step
        return self._now

    def set(self, instant: datetime) -> None:
        """Jumps to `instant` (aware), forward only."""
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError("a timezone-aware instant is needed")
        instant = instant.astimezone(UTC)
        if instant < self._now:
            raise ValueError("time only moves forward")
        self._now = instant

    def __repr__(self) -> str:
        return f"FrozenClock({self._now.isoformat()})"

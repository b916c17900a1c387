"""A consented request's statuses (libs/lifecycle.py), plus the one status derived from the time: expired."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from libs.lifecycle import Lifecycle, TransitionRefused

S = TypeVar("S", bound=StrEnum)

__all__ = ["RequestLifecycle", "S", "TransitionRefused"]


@dataclass(frozen=True)
class RequestLifecycle(Lifecycle[S]):
    # Where every request starts: waiting for the citizen.
    start: S
    # Shown, never stored: a request still at `start` once its expires_at has passed.
    expired: S

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(self.expired in targets for targets in self.transitions.values()):
            raise TypeError(f"{self.expired} is derived from the time, never moved to")

    def current(self, stored: str, expires_at: datetime, now: datetime) -> S:
        """The status a request shows at `now`."""
        status = type(self.start)(stored)
        if status == self.start and now >= expires_at:
            return self.expired
        return status

    def check(self, current: str, to: S, *, what: str = "a request") -> None:
        super().check(type(self.start)(current), to, what=what)

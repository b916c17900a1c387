"""A request's statuses and the moves allowed between them (as auth's accounts have theirs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

S = TypeVar("S", bound=StrEnum)


class TransitionRefused(ValueError):
    """A move the life cycle does not allow: a bug, or a request that changed meanwhile."""


@dataclass(frozen=True)
class Lifecycle(Generic[S]):
    # Where every request starts: waiting for the citizen.
    start: S
    # Shown, never stored: a request still at `start` once its expires_at has passed.
    expired: S
    # status -> the statuses it may move to (a final status maps to nothing).
    transitions: Mapping[S, frozenset[S]]

    def __post_init__(self) -> None:
        statuses = type(self.start)
        missing = set(statuses) - set(self.transitions)
        if missing:
            raise TypeError(f"no transitions declared for {sorted(missing)}")
        if any(self.expired in targets for targets in self.transitions.values()):
            raise TypeError(f"{self.expired} is derived from the time, never moved to")

    def current(self, stored: str, expires_at: datetime, now: datetime) -> S:
        """The status a request shows at `now`."""
        status = type(self.start)(stored)
        if status == self.start and now >= expires_at:
            return self.expired
        return status

    def check(self, current: str, to: S) -> None:
        if to not in self.transitions[type(self.start)(current)]:
            raise TransitionRefused(f"a request cannot go from {current} to {to}")

"""A status set and the moves allowed between them: one declaration per entity, checked at every move.

Used for auth's accounts, formfill's and signing's requests (libs/consented_requests adds their
time-derived `expired`) and notify's notifications and jobs. Declaring every status, even final ones
(which map to nothing), is enforced, so a status added to the enum without its moves fails at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

S = TypeVar("S", bound=str)


class TransitionRefused(ValueError):
    """A move the life cycle does not allow: a bug, or a document that changed meanwhile."""


@dataclass(frozen=True)
class Lifecycle(Generic[S]):
    # status -> the statuses it may move to (a final status maps to nothing).
    transitions: Mapping[S, frozenset[S]]

    def __post_init__(self) -> None:
        first = next(iter(self.transitions))
        if isinstance(first, Enum):
            missing = set(type(first)) - set(self.transitions)
            if missing:
                raise TypeError(f"no transitions declared for {sorted(missing)}")
        unknown = set().union(*self.transitions.values()) - set(self.transitions)
        if unknown:
            raise TypeError(f"moves to undeclared statuses: {sorted(unknown)}")

    def allows(self, current: S, to: S) -> bool:
        return to in self.transitions[current]

    def check(self, current: S, to: S, *, what: str = "a document") -> None:
        """TransitionRefused unless `current` may move to `to`."""
        if not self.allows(current, to):
            raise TransitionRefused(f"{what} cannot go from {current} to {to}")

    def final(self, status: S) -> bool:
        return not self.transitions[status]

    def leaving(self, to: S) -> S:
        """The one status a document moves to `to` from (for an update filtered on the status it leaves)."""
        sources = [status for status, targets in self.transitions.items() if to in targets]
        if len(sources) != 1:
            raise ValueError(f"no single status leads to {to}")
        return sources[0]

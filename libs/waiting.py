"""A request that waits gives back its place among its process's requests in flight while it waits.

A long poll (a relying party's `?wait=` for its citizen's answer: libs/held_requests.py) is admitted
and counted like any request (libs/service/overload.py), so its reads — the first one, a 404, an answer at once —
count against the process's in-flight limit; while it only waits for a wake-up it holds no place, or a few hundred
waiting relying parties would have every other request refused. The middleware hands the request's place to the
code below it through a context variable; `waiting_outside_the_count()` leaves it for the duration of the wait and
takes it back after (never refused then: the request is already being served). No aiohttp here: domain code calls it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol


class Place(Protocol):
    def leave(self) -> None: ...

    def come_back(self) -> None: ...


# The current request's place in its process's in-flight count (None: not counted, or no limit).
PLACE: ContextVar[Place | None] = ContextVar("in_flight_place", default=None)


@contextlib.contextmanager
def waiting_outside_the_count() -> Iterator[None]:
    """While the block waits, the current request holds no place in flight."""
    place = PLACE.get()
    if place is None:
        yield
        return
    place.leave()
    try:
        yield
    finally:
        place.come_back()

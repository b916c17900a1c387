"""Shedding load early: a per-process limit of requests in flight, answered 503 with Retry-After beyond it.

A service that takes every request queues them all on its event loop and its
database: under twice the load it can serve, every request waits behind the
others until callers (the gateway: 30 s) give up — the work is done for
nobody. With a limit, the requests beyond it are refused at once with 503
and `Retry-After: 1`, so the ones admitted finish in their usual time and the
platform is back to normal as soon as the load drops.

`{SERVICE}_MAX_IN_FLIGHT` sets the limit (0: none). Health probes are never
counted nor refused, and neither are long-lived routes (server-sent event
streams: an open stream is idle most of the time and would hold a place for
minutes); a service names them with `mark_long_lived(app, route)`. A long
poll — a request to a route marked with `mark_long_poll(app, route)` that
asks to be held (`?wait=`) — runs without the request deadline (it may wait
20 s; its reads take deadlines of their own) and is admitted and counted like
any request, except while it waits: it gives its place back then
(libs/waiting.py), and the service bounds how many it holds itself
(libs/held_requests.py). The same route without `wait` is an
ordinary request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from weakref import WeakKeyDictionary

from aiohttp import web

from libs.background import stop_task
from libs.errors import NotReady
from libs.waiting import PLACE

from .metrics import HTTP_IN_FLIGHT, HTTP_SHED

# Probes always answer: a shedding pod is busy, not dead, and must stay in rotation.
PROBES = frozenset({"/healthz", "/readyz"})
LONG_LIVED = web.AppKey("long_lived_routes", set)
LONG_POLLS = web.AppKey("long_poll_routes", set)
# The query parameter with which a long poll asks to be held.
WAIT = "wait"
RETRY_AFTER_S = 1


class Overloaded(NotReady):
    """More requests are being handled than this instance admits at once; retry after `Retry-After` seconds."""

    slug, title = "overloaded", "Overloaded"
    retry_after = RETRY_AFTER_S


@dataclass
class InFlight:
    """The requests a process is handling now, and how many it admits (0: no limit)."""

    service: str
    limit: int
    count: int = 0

    def __post_init__(self) -> None:
        # The gauge reads the count when scraped, rather than being set (a locked write) twice per request.
        HTTP_IN_FLIGHT.labels(self.service).set_function(lambda: self.count)

    def enter(self) -> bool:
        if self.limit and self.count >= self.limit:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1

    def come_back(self) -> None:
        """A long poll that gave its place back while it waited (libs/waiting.py) takes it again: it is already being
        served, so it is never refused."""
        self.count += 1


IN_FLIGHT = web.AppKey("in_flight", InFlight)


def mark_long_lived(app: web.Application, route: str) -> None:
    """`route` (a route template, or a path) serves a long-lived stream: outside the in-flight limit and deadlines."""
    app[LONG_LIVED].add(route)
    _MARKS_BY_RESOURCE.clear()


def mark_long_poll(app: web.Application, route: str) -> None:
    """`route` (a route template) holds a request that asks it to (`?wait=`): such a request is long-lived."""
    app[LONG_POLLS].add(route)
    _MARKS_BY_RESOURCE.clear()


class LongPolls(Protocol):
    """What holds a service's long polls (libs/held_requests.py `HeldRequests`)."""

    async def run(self) -> None: ...

    async def release_all(self) -> None: ...


def install_long_polls(app: web.Application, routes: Sequence[str], holder: Callable[[web.Application], LongPolls]) -> None:
    """`routes` hold a request that asks them to (`mark_long_poll`); `holder(app)` — ready once the service's context
    is (install after it) — runs for the app's lifetime, and answers every request it holds at the shutdown signal,
    so a rolling restart does not wait out anyone's wait."""
    for route in routes:
        mark_long_poll(app, route)

    async def running(app: web.Application):
        task = asyncio.create_task(holder(app).run(), name="long-polls")
        yield
        await stop_task(task)

    async def release_all(app: web.Application) -> None:
        await holder(app).release_all()

    app.cleanup_ctx.append(running)
    app.on_shutdown.append(release_all)


# A request's answer, worked out once: the in-flight limit and the database deadline (libs/store/client.py) both ask.
_LONG_LIVED_REQUEST = web.RequestKey("long_lived", bool)


def is_long_lived(request: web.Request) -> bool:
    """A probe, or a route its service marked long-lived (matched by template or by path)."""
    known = request.get(_LONG_LIVED_REQUEST)
    if known is None:
        known = request[_LONG_LIVED_REQUEST] = _is_long_lived(request)
    return known


def _is_long_lived(request: web.Request) -> bool:
    path = request.path
    if path in PROBES:
        return True
    marks = _route_marks(request)
    if marks is None:  # not found, method not allowed: no route, only a path to match
        return path in request.config_dict.get(LONG_LIVED, ())
    marked, template_marked, _ = marks
    return template_marked or path in marked or _held(marks, request)


def _is_long_poll(request: web.Request) -> bool:
    """A request to a route marked with `mark_long_poll` that asks to be held."""
    marks = _route_marks(request)
    return marks is not None and _held(marks, request)


def _held(marks: tuple[frozenset[str], bool, bool], request: web.Request) -> bool:
    """The request is to a long poll's route (its marks) and asks to be held."""
    return marks[2] and WAIT in request.query


def _route_marks(request: web.Request) -> tuple[frozenset[str], bool, bool] | None:
    """The marks of the request's route (None: no route): its application's long-lived marks, whether its template is
    one of them, and whether it is a long poll's."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    marks = _MARKS_BY_RESOURCE.get(resource)
    if marks is None:
        marked = frozenset(request.config_dict.get(LONG_LIVED, ()))
        marks = _MARKS_BY_RESOURCE[resource] = (marked, resource.canonical in marked,
                                                resource.canonical in request.config_dict.get(LONG_POLLS, ()))
    return marks


# A route's marks (its application chain's) and whether its template is one of them, or a long poll's, worked out on
# its first request rather than on every one (~2 % of a small request's CPU); forgotten when a route is marked, and
# with the route.
_MARKS_BY_RESOURCE: WeakKeyDictionary[object, tuple[frozenset[str], bool, bool]] = WeakKeyDictionary()


@web.middleware
async def in_flight_middleware(request: web.Request, handler):
    """Admit the request within the process's limit, or refuse it at once (rendered by the problem middleware)."""
    long_lived = is_long_lived(request)
    long_poll = long_lived and _is_long_poll(request)  # a long poll is long-lived; most requests are neither
    if long_lived and not long_poll:
        return await handler(request)
    in_flight = request.app[IN_FLIGHT]  # this middleware is the root application's, as is IN_FLIGHT (app.py)
    if not in_flight.enter():
        HTTP_SHED.labels(in_flight.service, "overloaded").inc()
        raise Overloaded(f"this instance is handling its limit of {in_flight.limit} requests; retry in {RETRY_AFTER_S} s")
    handed = PLACE.set(in_flight) if long_poll else None  # its place, given back while it waits (libs/waiting.py)
    try:
        return await handler(request)
    finally:
        if handed is not None:
            PLACE.reset(handed)
        in_flight.leave()

"""The middlewares every service runs, outermost first: request id, metrics, problems, the in-flight limit.

The access log (`metrics_middleware`) does not write a line per request: every request is counted in the
metrics, but a line is written only for an error (4xx at INFO: refusals and probing stay visible; 5xx at
WARNING), a slow request (over HARBOUR_ACCESS_LOG_SLOW_MS) and one in HARBOUR_ACCESS_LOG_SAMPLE of the rest
(docs/operations.md, Logs). A routine answer (`Refused.routine`: a result polled for before it is ready) is one of
the rest, whatever its status. Each line written carries the request id, and `logged` says why it was written.
"""

from __future__ import annotations

import asyncio
import random
import re
import time

import structlog
from aiohttp import web

from .logging import get_logger
from .metrics import HTTP_LATENCY, HTTP_REQUESTS, HTTP_SHED
from .problems import InternalError, Refused, problem_from_http_exception, problem_response
from .unavailable import DependencyUnavailable, unavailable_dependency

REQUEST_ID_HEADER = "X-Request-Id"
SERVICE_NAME = web.AppKey("service_name", str)
REQUEST_ID = web.RequestKey("request_id", str)
# A handler that serves many paths (the gateway) names the route it matched here, for metrics and logs.
ROUTE_LABEL = web.RequestKey("route_label", str)
# Set by problem_middleware when the answer is a routine refusal (libs.errors.Refused.routine): logged as a success.
ROUTINE_ANSWER = web.RequestKey("routine_answer", bool)
# A caller's id is kept only when it is short and plain, so it cannot inject into logs.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = get_logger("harbour.http")
# What nginx logs for a request whose client closed the connection before the answer was done.
CLIENT_CLOSED_REQUEST = 499
UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class AccessLog:
    """Which requests get a log line: errors, slow ones, and every `sample`-th of the rest (0: none, 1: all)."""

    def __init__(self, *, slow_ms: float = 500.0, sample: int = 100) -> None:
        self.slow_s = slow_ms / 1000.0
        self.sample = max(0, sample)
        self._seen = 0

    def why(self, status: int, elapsed_s: float, *, routine: bool = False) -> str | None:
        """Why this request is logged ("error", "slow", "sample"), or None for no line; `routine`: an answer the caller
        meets in the normal course, logged as a success whatever its status."""
        if status == CLIENT_CLOSED_REQUEST:
            return "client closed"
        if status >= 400 and not routine:
            return "error"
        if elapsed_s >= self.slow_s:
            return "slow"
        if self.sample:
            self._seen += 1
            if self._seen >= self.sample:
                self._seen = 0
                return "sample"
        return None


ACCESS_LOG = web.AppKey("access_log", AccessLog)
# (service, route template, method, status) -> its request counter and latency histogram, looked up once.
# Bounded like the metrics themselves: route templates, not paths.
_SERIES: dict[tuple, tuple] = {}


def route_template(request: web.Request) -> str:
    if ROUTE_LABEL in request:
        return request[ROUTE_LABEL]
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # A new id is 128 random bits, as a uuid4: from the process's generator, not os.urandom (a system call per
    # request); it correlates log lines and is no secret — a caller may send its own.
    request_id = incoming if _REQUEST_ID_RE.match(incoming) else f"{random.getrandbits(128):032x}"
    request[REQUEST_ID] = request_id
    # Bound without unbinding: aiohttp runs every request in a task of its own, whose context ends with it (and
    # bound_contextvars' copy of the whole context on the way in cost more than the rest of this middleware).
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return await handler(request)


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed responses (proxied bodies, SSE) before their headers go out."""
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except asyncio.CancelledError:
        # aiohttp cancels the handler of a client that went away (an app closing its event stream): nginx's 499,
        # not a server error — a 500 here would set off every 5xx alert each time a phone closes the app.
        status = CLIENT_CLOSED_REQUEST
        raise
    finally:
        elapsed = time.perf_counter() - started
        labels = (request.app[SERVICE_NAME], route_template(request), request.method, status)
        counted = _SERIES.get(labels)
        if counted is None:
            strings = (*labels[:3], str(status))
            counted = _SERIES[labels] = (HTTP_REQUESTS.labels(*strings), HTTP_LATENCY.labels(*strings))
        counted[0].inc()
        counted[1].observe(elapsed)
        access_log = request.app.get(ACCESS_LOG)
        routine = request.get(ROUTINE_ANSWER, False)
        why = access_log.why(status, elapsed, routine=routine) if access_log is not None else "sample"
        if why is not None and request.path not in UNLOGGED_PATHS:
            (log.warning if status >= 500 else log.info)(
                "request",
                method=request.method,
                route=labels[1],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                logged=why,
            )


@web.middleware
async def problem_middleware(request: web.Request, handler):
    """Every error leaves as problem+json; an unexpected one as a bare 500, its stack trace only in the log.

    Any `libs.errors.Refused` (domain refusals included) is rendered here, so handlers never catch one. An
    unavailable database or broker (libs/service/unavailable.py: down, stalled, over the request's deadline) is
    503 with Retry-After, here and only here, whichever handler met it.
    """
    try:
        return await handler(request)
    except Refused as refusal:
        if refusal.routine:
            request[ROUTINE_ANSWER] = True
        return problem_response(refusal, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(problem_from_http_exception(exc), request)
    except Exception as exc:
        dependency = unavailable_dependency(exc)
        if dependency is not None:
            HTTP_SHED.labels(request.config_dict[SERVICE_NAME], dependency).inc()
            log.warning("dependency unavailable", dependency=dependency, error=type(exc).__name__,
                        method=request.method, route=route_template(request))
            return problem_response(DependencyUnavailable("the service is temporarily unavailable; retry shortly"), request)
        log.exception("unhandled error", method=request.method, route=route_template(request))
        return problem_response(InternalError("an unexpected error occurred; quote the request id"), request)

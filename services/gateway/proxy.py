"""Streaming pass-through to an upstream service, with timeouts, one retry for idempotent requests, a breaker
and a limit of requests in flight per upstream.

What the gateway answers itself, one status per cause:

- 503 `upstream-unavailable` + Retry-After: nothing reached the service — the
  connection was refused or not accepted within the connect timeout (1 s), or
  the circuit is open. Safe to retry.
- 503 `upstream-overloaded` + Retry-After 1: the upstream already has its limit
  of requests in flight from this gateway (`GATEWAY_UPSTREAM_MAX_IN_FLIGHT`);
  refused at once rather than queued. Long-lived streams are not counted, nor
  long polls (a relying party's `?wait=` for its citizen's answer: the
  service bounds those itself).
- 504: the service accepted the request but sent no answer within the read
  timeout (30 s) — it may have done the work.
- 502: the service's answer broke off or could not be read, or the connection
  was reset after the request went out (the service may have handled it).

Bodies flow through in chunks both ways (large PDFs, SSE) without being
buffered, except small ones of a declared length — a request body or an
answer of at most 64 KiB is read whole, then sent in one write (a token
request's form, a JSON answer) — and a request body sent without
Content-Length (chunked): that one is read first, up to the route's limit, so
an oversized one is a 413 and the upstream never sees a truncated request. Hop-by-hop headers stop here;
the request id travels on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict
from yarl import URL

from libs.service.middleware import REQUEST_ID, REQUEST_ID_HEADER
from libs.service.tracing import end_client_span, start_client_span
from libs.errors import PayloadTooLarge

from .breaker import CircuitBreaker
from .upstream_client import ReusedConnectionClosed, UpstreamClient, UpstreamConnectError
from .errors import BadGateway, GatewayTimeout, UpstreamOverloaded, UpstreamUnavailable
from .metrics import CIRCUIT_OPEN, REJECTED, UPSTREAM_IN_FLIGHT, UPSTREAM_LATENCY, UPSTREAM_REQUESTS

# RFC 9110 §7.6.1 hop-by-hop fields, plus Host (set for the upstream).
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
    }
)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass
class Upstream:
    name: str
    base_url: str
    session: aiohttp.ClientSession  # bodies streamed upstream (over 64 KiB), and the health probes
    breaker: CircuitBreaker
    max_in_flight: int = 0  # 0: no limit
    in_flight: int = 0
    client: UpstreamClient | None = None  # everything else (upstream_client.py); None: the session for all

    def __post_init__(self) -> None:
        self.url = URL(self.base_url)  # its host and port name the server in client spans
        # This upstream's metric series, looked up once rather than per request.
        # Gauges read when scraped, rather than set (a locked write) on every request.
        UPSTREAM_IN_FLIGHT.labels(self.name).set_function(lambda: self.in_flight)
        CIRCUIT_OPEN.labels(self.name).set_function(lambda: 0 if self.breaker.state == "closed" else 1)
        self.latency = UPSTREAM_LATENCY.labels(self.name)
        self._requests: dict[tuple[str, str], object] = {}

    def counted(self, route: str, status: str) -> None:
        """One request forwarded on `route` answered `status` (harbour_gateway_upstream_requests_total)."""
        counter = self._requests.get((route, status))
        if counter is None:
            counter = self._requests[(route, status)] = UPSTREAM_REQUESTS.labels(self.name, route, status)
        counter.inc()

    def enter(self) -> bool:
        if self.max_in_flight and self.in_flight >= self.max_in_flight:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1


def _forwardable(headers) -> CIMultiDict:
    connection = headers.get("Connection")
    dropped = HOP_BY_HOP | {t.strip().lower() for t in connection.split(",")} if connection else HOP_BY_HOP
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in dropped])


async def _read_chunked(content: aiohttp.StreamReader, limit: int) -> bytes:
    """A body without Content-Length, read whole before the upstream is contacted.

    Its size is only known at its end: streaming it would hand the upstream a
    truncated request when the limit is crossed halfway. Bounded by the route's limit.
    """
    body = bytearray()
    async for chunk in content.iter_any():
        if len(body) + len(chunk) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        body += chunk
    return bytes(body)


def _unavailable(upstream: Upstream, detail: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(detail, upstream=upstream.name, retry_after=max(1, upstream.breaker.retry_after_s()))


async def forward(request: web.Request, upstream: Upstream, route: str, max_body_bytes: int, *,
                  long_lived: bool = False) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > max_body_bytes:
        REJECTED.labels("too_large").inc()
        raise PayloadTooLarge(f"the request body is larger than {max_body_bytes} bytes")
    if not upstream.breaker.allow():
        REJECTED.labels("circuit_open").inc()
        upstream.counted(route, "503")
        raise _unavailable(upstream, f"the {upstream.name} service is failing; retry shortly")
    if long_lived:
        return await _forward(request, upstream, route, max_body_bytes)
    if not upstream.enter():
        REJECTED.labels("overloaded").inc()
        upstream.counted(route, "503")
        raise UpstreamOverloaded(f"the {upstream.name} service is busy; retry shortly", upstream=upstream.name)
    try:
        return await _forward(request, upstream, route, max_body_bytes)
    finally:
        upstream.leave()


async def _forward(request: web.Request, upstream: Upstream, route: str, max_body_bytes: int) -> web.StreamResponse:
    headers = _upstream_headers(request)
    body = await _request_body(request, max_body_bytes)
    attempts = 2 if request.method in IDEMPOTENT and not request.body_exists else 1
    lean = upstream.client is not None and not isinstance(body, aiohttp.StreamReader)
    if lean and body is not None:
        headers.popall("Content-Length", None)  # the lean client writes the body's own
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        # Each attempt's client span, its context in the attempt's traceparent (libs/service/tracing.py); made here
        # rather than by aiohttp's trace signals, which cost more per request than the rest of the tracing.
        span = start_client_span(request.method, upstream.url, headers)
        try:
            try:
                async with (upstream.client.request(request.method, request.raw_path, headers, body,
                                                    may_resend=attempts > 1) if lean else
                            upstream.session.request(request.method, _target(upstream, request), headers=headers,
                                                     data=body, allow_redirects=False)) as upstream_response:
                    end_client_span(span, upstream_response.status)
                    span = None
                    upstream.latency.observe(time.perf_counter() - started)
                    upstream.breaker.succeeded()
                    upstream.counted(route, str(upstream_response.status))
                    return await _relay(request, upstream_response)
            except BaseException as exc:
                end_client_span(span, error=exc)
                raise
        # Refused, not accepted within the connect timeout (before the timeouts below: it is one too), or dropped.
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.ServerDisconnectedError,
                UpstreamConnectError) as exc:
            if not isinstance(exc, ReusedConnectionClosed):  # an idle connection the service let go: no failure
                _failed(upstream)
            if attempt < attempts:
                continue
            upstream.counted(route, "503")
            raise _unavailable(upstream, f"the {upstream.name} service is unavailable") from exc
        # The connection broke after the request went out (reset by a service killed mid-request): it may have
        # been handled, so it is not "unavailable" — a safe request is tried again, any other is a 502.
        except aiohttp.ClientOSError as exc:
            _failed(upstream)
            if attempt < attempts:
                continue
            upstream.counted(route, "502")
            raise BadGateway(f"the connection to the {upstream.name} service broke", upstream=upstream.name) from exc
        except asyncio.TimeoutError as exc:
            _failed(upstream)
            upstream.counted(route, "504")
            raise GatewayTimeout(f"the {upstream.name} service did not answer in time", upstream=upstream.name) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError, HttpProcessingError) as exc:
            upstream.counted(route, "502")
            raise BadGateway(f"the {upstream.name} service sent a broken response", upstream=upstream.name) from exc
    raise AssertionError("unreachable")


def _target(upstream: Upstream, request: web.Request) -> URL:
    """The upstream's URL for the request target exactly as the client encoded it."""
    return URL(upstream.base_url + request.raw_path, encoded=True)


def _upstream_headers(request: web.Request) -> CIMultiDict:
    """The client's end-to-end headers, the request id, and where the request came from."""
    headers = _forwardable(request.headers)
    headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    headers["X-Forwarded-For"] = request.remote or ""
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    return headers


async def _request_body(request: web.Request, max_body_bytes: int) -> bytes | aiohttp.StreamReader | None:
    """A declared length is checked before and the server reads no further: streamed, or read whole when small (sent
    with the request's headers then, rather than chunk by chunk from the client's stream). A chunked one is read first."""
    if not request.body_exists:
        return None
    if request.content_length is not None:
        return await request.read() if request.content_length <= BUFFERED_BODY_BYTES else request.content
    try:
        return await _read_chunked(request.content, max_body_bytes)
    except PayloadTooLarge:
        REJECTED.labels("too_large").inc()
        raise


# An answer whose declared length is at most this is read whole and sent in one write (headers and body together:
# two system calls fewer per request than streaming it); anything longer, or of unknown length (SSE), streams. The
# same for a request body of a declared length: read whole and sent upstream with the request's headers.
BUFFERED_ANSWER_BYTES = BUFFERED_BODY_BYTES = 64 * 1024


async def _relay(request: web.Request, upstream_response: aiohttp.ClientResponse) -> web.StreamResponse:
    """The upstream's answer: a small one of known length read whole (a broken one is then a 502), else streamed."""
    length = upstream_response.content_length
    if (length is not None and length <= BUFFERED_ANSWER_BYTES and request.method != "HEAD"
            and upstream_response.status not in (204, 304)):  # their Content-Length describes no body here
        body = await upstream_response.read()
        headers = _forwardable(upstream_response.headers)
        headers.popall("Content-Length", None)  # aiohttp writes the body's own
        return web.Response(status=upstream_response.status, reason=upstream_response.reason, headers=headers, body=body)
    response = web.StreamResponse(status=upstream_response.status, reason=upstream_response.reason)
    response.headers.update(_forwardable(upstream_response.headers))
    await response.prepare(request)
    try:
        async for chunk in upstream_response.content.iter_any():
            if not await _write_to_client(response, chunk):
                return response
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, asyncio.TimeoutError):
        # Headers are gone already: all we can do is cut the stream so the client sees it broke.
        request.transport and request.transport.close()
        return response
    await _write_to_client(response)
    return response


async def _write_to_client(response: web.StreamResponse, chunk: bytes | None = None) -> bool:
    """A chunk (None: the end) to the client; False when the client has gone (an app closing its event stream, a
    browser leaving): an ordinary end, not an error. Leaving the upstream's `async with` then closes that
    connection, so the service sees the stream end too."""
    try:
        await (response.write(chunk) if chunk is not None else response.write_eof())
    except ConnectionResetError:
        return False
    return True


def _failed(upstream: Upstream) -> None:
    upstream.breaker.failed()

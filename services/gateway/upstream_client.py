"""The gateway's HTTP/1.1 client towards one upstream: pooled keep-alive connections, nothing more.

aiohttp's ClientSession spent more of the gateway's CPU per proxied request
than the rest of the forwarding (per-request URL, header, cookie, proxy,
auth and compression handling, a request object, a connector lookup): the
gateway needs none of it, since it sends the client's request on as it came.
This sends the request line and headers (and a body already in memory) in
one write on an idle connection of the upstream's pool, and reads the answer
with aiohttp's own client protocol (`ResponseHandler`: its C parser, chunked
and length-delimited bodies, the payload stream with flow control, the read
timeout, and the same exceptions as ClientSession: `ServerDisconnectedError`,
`ClientOSError`, `ServerTimeoutError`, `ClientPayloadError`).

A connection goes back to the pool only when its answer was read to the end
and neither side asked to close; the pool holds at most `max_idle`
connections, each for at most `idle_s` (15 s, as aiohttp's connector: well
inside the 75 s after which an aiohttp service closes an idle connection, so
the gateway lets go first). A connection that cannot be made (refused, or not
accepted within the connect timeout) is `UpstreamConnectError`: nothing
reached the service.

A pooled connection the service closed just as a request went out on it (its
keep-alive timeout met the request on the way) ends before any answer: a
request that may be sent twice (`may_resend`: the proxy's idempotent methods)
is sent again at once on a new connection, as aiohttp and browsers do; any
other is `ReusedConnectionClosed` — a disconnection that says nothing of the
service's health, so the proxy does not count it against its circuit.
"""

from __future__ import annotations

import asyncio

import time

from aiohttp import ClientOSError, ServerDisconnectedError
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import EMPTY_BODY_METHODS
from multidict import CIMultiDictProxy
from yarl import URL


class UpstreamConnectError(ConnectionError):
    """No connection to the upstream: refused, unreachable or not accepted in time."""


class ReusedConnectionClosed(ServerDisconnectedError):
    """A kept-alive connection ended before any answer: closed by the upstream as idle, not a sign of failure."""


def _header_bytes(method: str, target: str, host: str, headers, body_length: int | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n")
    if body_length is not None:
        lines.append(f"Content-Length: {body_length}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # One line break per line written, none inside a name or a value (the server's parser lets none through;
    # checked here all the same, as aiohttp's client does, so no header can be smuggled upstream).
    breaks = len(lines) + 1
    if head.count("\n") != breaks or head.count("\r") != breaks or head.count("\r\n") != breaks:
        raise ValueError("a header carries a line break")
    # As the server decoded them (utf-8, undecodable bytes kept as surrogates): the same bytes go out.
    return head.encode("utf-8", "surrogateescape")


class UpstreamResponse:
    """An upstream's answer: status, reason, headers, and the body as aiohttp's payload stream (`content`)."""

    __slots__ = ("status", "reason", "headers", "content", "content_length")

    def __init__(self, message, payload) -> None:
        self.status: int = message.code
        self.reason: str = message.reason
        self.headers: CIMultiDictProxy[str] = message.headers
        self.content = payload
        length = self.headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None

    async def read(self) -> bytes:
        return await self.content.read()


class UpstreamClient:
    def __init__(self, base_url: str, *, connect_timeout_s: float, read_timeout_s: float, max_idle: int = 256,
                 idle_s: float = 15.0) -> None:
        url = URL(base_url)
        self.host_addr, self.port = url.host, url.port
        self.host = url.host_port_subcomponent  # the Host header: the port only when not the default
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_idle = max_idle
        self.idle_s = idle_s
        self._idle: list[tuple[ResponseHandler, float]] = []  # (connection, when it went idle), newest last
        self._closed = False
        self.connections_made = 0

    async def _connection(self, *, fresh: bool = False) -> tuple[ResponseHandler, bool]:
        """A connection and whether it was reused from the pool (`fresh`: a new one)."""
        oldest_usable = time.monotonic() - self.idle_s
        while self._idle and not fresh:
            protocol, idle_since = self._idle.pop()
            if idle_since >= oldest_usable and protocol.is_connected() and not protocol.should_close:
                return protocol, True
            protocol.close()
        if self._idle and self._idle[0][1] < oldest_usable:  # the least recently used ones may have expired too
            expired = [protocol for protocol, idle_since in self._idle if idle_since < oldest_usable]
            self._idle = [(protocol, idle_since) for protocol, idle_since in self._idle if idle_since >= oldest_usable]
            for protocol in expired:
                protocol.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, protocol = await loop.create_connection(lambda: ResponseHandler(loop), self.host_addr, self.port)
        except (OSError, asyncio.TimeoutError) as exc:
            raise UpstreamConnectError(f"cannot connect to {self.host}: {exc!r}") from exc
        self.connections_made += 1
        return protocol, False

    def request(self, method: str, target: str, headers, body: bytes | None, *, may_resend: bool = False) -> "_Exchange":
        """`async with client.request(...) as response`: the answer; its connection is released on the way out."""
        return _Exchange(self, method, target, headers, body, may_resend)

    def _release(self, protocol: ResponseHandler, reusable: bool) -> None:
        if reusable and not self._closed and protocol.is_connected() and not protocol.should_close \
                and len(self._idle) < self.max_idle:
            self._idle.append((protocol, time.monotonic()))
        else:
            protocol.close()

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop()[0].close()


class _Exchange:
    __slots__ = ("client", "method", "target", "headers", "body", "may_resend", "protocol", "response")

    def __init__(self, client: UpstreamClient, method: str, target: str, headers, body: bytes | None,
                 may_resend: bool) -> None:
        self.client, self.method, self.target, self.headers, self.body = client, method, target, headers, body
        self.may_resend = may_resend
        self.protocol: ResponseHandler | None = None
        self.response: UpstreamResponse | None = None

    async def __aenter__(self) -> UpstreamResponse:
        head = _header_bytes(self.method, self.target, self.client.host, self.headers,
                             None if self.body is None else len(self.body))
        protocol, reused = await self.client._connection()
        try:
            return await self._exchange(protocol, head)
        except (ServerDisconnectedError, ClientOSError) as exc:
            if not reused:
                raise
            if not self.may_resend:
                raise ReusedConnectionClosed(f"the kept-alive connection to {self.client.host} closed") from exc
        protocol, _ = await self.client._connection(fresh=True)
        return await self._exchange(protocol, head)

    async def _exchange(self, protocol: ResponseHandler, head: bytes) -> UpstreamResponse:
        client, body = self.client, self.body
        self.protocol = protocol
        try:
            protocol.set_response_params(
                skip_payload=self.method in EMPTY_BODY_METHODS, read_until_eof=True, auto_decompress=False,
                read_timeout=client.read_timeout_s, read_bufsize=2 ** 16)
            protocol.transport.write(head + body if body else head)
            protocol.start_timeout()
            while True:  # interim 1xx answers are skipped, as aiohttp does
                message, payload = await protocol.read()
                if message.code < 100 or message.code > 199 or message.code == 101:
                    break
        except BaseException:
            protocol.close()  # never reused: what it carried is unknown
            self.protocol = None
            raise
        self.response = UpstreamResponse(message, payload)
        return self.response

    async def __aexit__(self, exc_type, exc, tb) -> None:
        protocol = self.protocol
        if protocol is None:
            return
        response = self.response
        reusable = exc_type is None and response is not None and response.content.is_eof()
        self.client._release(protocol, reusable)

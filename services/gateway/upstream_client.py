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
connections. A connection that cannot be made (refused, or not accepted
within the connect timeout) is `UpstreamConnectError`: nothing reached the
service.
"""

from __future__ import annotations

import asyncio

from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import EMPTY_BODY_METHODS
from multidict import CIMultiDictProxy
from yarl import URL


class UpstreamConnectError(ConnectionError):
    """No connection to the upstream: refused, unreachable or not accepted in time."""


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
    def __init__(self, base_url: str, *, connect_timeout_s: float, read_timeout_s: float, max_idle: int = 256) -> None:
        url = URL(base_url)
        self.host_addr, self.port = url.host, url.port
        self.host = url.host_port_subcomponent  # the Host header: the port only when not the default
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_idle = max_idle
        self._idle: list[ResponseHandler] = []
        self._closed = False

    async def _connection(self) -> ResponseHandler:
        while self._idle:
            protocol = self._idle.pop()
            if protocol.is_connected() and not protocol.should_close:
                return protocol
            protocol.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, protocol = await loop.create_connection(lambda: ResponseHandler(loop), self.host_addr, self.port)
        except (OSError, asyncio.TimeoutError) as exc:
            raise UpstreamConnectError(f"cannot connect to {self.host}: {exc!r}") from exc
        return protocol

    def request(self, method: str, target: str, headers, body: bytes | None) -> "_Exchange":
        """`async with client.request(...) as response`: the answer; its connection is released on the way out."""
        return _Exchange(self, method, target, headers, body)

    def _release(self, protocol: ResponseHandler, reusable: bool) -> None:
        if reusable and not self._closed and protocol.is_connected() and not protocol.should_close \
                and len(self._idle) < self.max_idle:
            self._idle.append(protocol)
        else:
            protocol.close()

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class _Exchange:
    __slots__ = ("client", "method", "target", "headers", "body", "protocol", "response")

    def __init__(self, client: UpstreamClient, method: str, target: str, headers, body: bytes | None) -> None:
        self.client, self.method, self.target, self.headers, self.body = client, method, target, headers, body
        self.protocol: ResponseHandler | None = None
        self.response: UpstreamResponse | None = None

    async def __aenter__(self) -> UpstreamResponse:
        client = self.client
        body = self.body
        head = _header_bytes(self.method, self.target, client.host, self.headers, None if body is None else len(body))
        protocol = self.protocol = await client._connection()
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

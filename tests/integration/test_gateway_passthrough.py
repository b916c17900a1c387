"""The gateway's pass-through over real sockets: routing, streaming, headers, failing upstreams."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest
from yarl import URL
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from libs.devstack.processes import free_port
from libs.service import ServiceSettings
from services.gateway.app import create_app
from services.gateway.settings import UPSTREAMS, GatewaySettings

from ..support.polling import eventually

pytestmark = pytest.mark.integration

# The endless streams whose client connection closed, seen from the upstream's side (the gateway let it go).
ENDED_STREAMS: list[str] = []
SEEN_HEADERS = ("traceparent", "tracestate", "Cookie", "Accept-Encoding", "User-Agent", "Accept", "X-Forwarded-For")


def fake_upstream(name: str) -> web.Application:
    """A stand-in service that reports what it received."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "service": name,
                "method": request.method,
                "path_qs": request.raw_path,
                "body_length": len(body),
                "request_id": request.headers.get("X-Request-Id"),
                "connection_header": request.headers.get("Proxy-Authorization"),
                "headers": {header: request.headers.get(header) for header in SEEN_HEADERS},
                "peer_port": request.transport.get_extra_info("peername")[1],
            },
            headers={"X-Upstream": name},
        )

    async def set_cookie(request: web.Request) -> web.Response:
        """A browser's session cookie, as auth sets one at login: meant for that browser only."""
        response = web.json_response({"cookie_sent": request.headers.get("Cookie")})
        response.set_cookie("session", "browser-a-secret", path="/")
        return response

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(3):
            await response.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def endless_stream(request: web.Request) -> web.StreamResponse:
        """An app's event stream: open until the other side goes."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b"data: tick\n\n")
                await asyncio.sleep(0.01)
        finally:  # its write failed, or aiohttp cancelled it: the gateway let the connection go
            ENDED_STREAMS.append(request.headers["X-Request-Id"])

    async def reset_after_reading(request: web.Request) -> web.Response:
        """A service killed while handling: the request was read, the connection is reset (RST), no answer."""
        await request.read()
        request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()
        await asyncio.sleep(5)
        raise AssertionError("unreachable: the connection is gone")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/oidc/inbox/stream", stream)
    app.router.add_get("/oidc/inbox/endless", endless_stream)
    app.router.add_post("/oidc/reset", reset_after_reading)
    app.router.add_get("/oidc/login", set_cookie)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
async def gateway():
    async for client in _gateway("127.0.0.1"):
        yield client


@pytest.fixture
async def gateway_by_name():
    """The upstreams named by host name, as in a cluster (`http://auth:8001`), not by address."""
    async for client in _gateway("localhost"):
        yield client


async def _gateway(upstream_host: str):
    servers = {name: TestServer(fake_upstream(name), host="127.0.0.1") for name in UPSTREAMS if name != "formfill"}
    for server in servers.values():
        await server.start_server()
    upstreams = {name: f"http://{upstream_host}:{server.port}" for name, server in servers.items()}
    upstreams["formfill"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = GatewaySettings(service=ServiceSettings(service="gateway"), upstreams=upstreams, upstream_timeout_s=5,
                               cors_origins=frozenset({"https://rp.example"}))
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client
    for server in servers.values():
        await server.close()


@pytest.mark.parametrize(
    ("method", "path", "owner"),
    [("POST", "/oidc/x%2Fy?q=a%20b", "auth"), ("POST", "/v1/signing/verify?q=a%20b", "signing"),
     ("GET", "/oidc/logout?post_logout_redirect_uri=https%3A%2F%2Frp.example%2Fa%3Fb%3D1%26c%3D2&state=s%2Ft", "auth"),
     ("GET", "/.well-known/openid-configuration", "auth")],
)
async def test_public_routes_reach_their_owner(gateway, method, path, owner):
    # Sent exactly as written (the test client would normalise %2F and %3A in the query before the gateway saw them).
    url = URL(str(gateway.make_url("")).rstrip("/") + path, encoded=True)
    response = await gateway.session.request(method, url, data=b"z" * 10 if method == "POST" else None,
                                             headers={"X-Request-Id": "gw-1"})
    assert response.status == 200
    seen = await response.json()
    assert seen["service"] == owner
    assert seen["path_qs"] == path  # forwarded exactly as encoded
    assert seen["body_length"] == (10 if method == "POST" else 0)
    assert seen["request_id"] == "gw-1"
    assert response.headers["X-Request-Id"] == "gw-1"
    assert response.headers["X-Upstream"] == owner
    assert int(response.headers["RateLimit-Remaining"]) >= 0


async def test_prefixes_match_on_segment_boundaries_and_methods(gateway):
    assert (await gateway.get("/oidcx")).status == 404
    assert (await gateway.get("/v1/inboxes")).status == 404
    wrong_method = await gateway.patch("/v1/devices")
    assert wrong_method.status == 405 and "GET" in wrong_method.headers["Allow"]


async def test_hop_by_hop_headers_stop_at_the_gateway(gateway):
    response = await gateway.get("/oidc/x", headers={"Proxy-Authorization": "Basic c2VjcmV0"})
    assert (await response.json())["connection_header"] is None


async def test_large_bodies_and_event_streams_pass_through(gateway):
    big = b"%PDF-" + b"x" * (5 * 1024 * 1024)
    response = await gateway.post("/v1/signing/verify", data=big, headers={"Content-Type": "application/pdf"})
    assert (await response.json())["body_length"] == len(big)
    too_big = await gateway.post("/v1/formfill/requests", data=big, headers={"Content-Type": "application/pdf"})
    assert too_big.status == 413  # 1 MiB limit on that route; the upstream never sees it
    response = await gateway.get("/oidc/inbox/stream")
    assert response.headers["Content-Type"] == "text/event-stream"
    assert await response.text() == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


def _answered_by_the_gateway(status: str) -> float:
    return sum(sample.value for metric in REGISTRY.collect() if metric.name == "harbour_http_requests"
               for sample in metric.samples if sample.name == "harbour_http_requests_total"
               and sample.labels["service"] == "gateway" and sample.labels["status"] == status)


async def test_a_client_leaving_a_stream_ends_it_quietly_and_the_service_sees_it_end(gateway):
    """An app closes its event stream mid-way: no error logged or counted (it was a 500 with a stack trace in the
    log), and the upstream's connection is let go, so the service stops writing to nobody."""
    errors, closed, served = (_answered_by_the_gateway(status) for status in ("500", "499", "200"))
    response = await gateway.get("/oidc/inbox/endless", headers={"X-Request-Id": "leaving-app-1"})
    assert response.status == 200 and (await response.content.readuntil(b"\n\n")) == b"data: tick\n\n"
    response.connection.transport.abort()  # the app goes away without reading on
    await eventually(lambda: "leaving-app-1" in ENDED_STREAMS)
    # Counted as nginx counts it: 499, the client closed the request (or 200 when the stream's write noticed first).
    await eventually(lambda: _answered_by_the_gateway("499") > closed or _answered_by_the_gateway("200") > served)
    assert _answered_by_the_gateway("500") == errors
    assert (await gateway.get("/oidc/x")).status == 200  # and the gateway serves on


async def test_unavailable_upstream_is_a_503_problem_and_reported(gateway):
    for attempt in range(7):
        response = await gateway.post("/v1/formfill/requests", json={})
        assert response.status == 503
        problem = await response.json(content_type="application/problem+json")
        assert problem["upstream"] == "formfill" and int(response.headers["Retry-After"]) >= 1
    # The breaker (opened by the health probe, or after five failures in a row) answers at once, without trying.
    assert "failing" in problem["detail"]
    # ... and ops see it: the gauge reads the breaker when scraped (proxy.py), and the alert fires on it.
    assert REGISTRY.get_sample_value("harbour_gateway_circuit_open", {"upstream": "formfill"}) == 1
    assert REGISTRY.get_sample_value("harbour_gateway_circuit_open", {"upstream": "auth"}) == 0

    async def reported():
        ready = await (await gateway.get("/readyz")).json()
        return ready if ready["upstreams"]["auth"] == "ok" else None

    ready = await eventually(reported, timeout_s=10)
    # Reported, not a readiness check of the gateway's (tests/integration/test_gateway_shedding.py).
    assert ready["upstreams"]["formfill"] != "ok" and "formfill" not in ready["checks"]


async def test_a_connection_reset_after_the_request_went_out_is_a_502_problem_not_a_500(gateway):
    """Seen in the chaos run: a service SIGKILLed with a request in flight resets the connection; the request may
    have been handled, so it is neither 'unavailable' (503, retry freely) nor the gateway's own error (500)."""
    response = await gateway.post("/oidc/reset", data={"grant_type": "client_credentials"})
    assert response.status == 502
    problem = await response.json(content_type="application/problem+json")
    assert problem["upstream"] == "auth" and "broke" in problem["detail"]


async def test_cors_for_listed_origins_only(gateway):
    preflight = await gateway.options("/oidc/token", headers={"Origin": "https://rp.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://rp.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    actual = await gateway.get("/oidc/x", headers={"Origin": "https://rp.example"})
    assert actual.headers["Access-Control-Allow-Origin"] == "https://rp.example"
    assert "X-Request-Id" in actual.headers["Access-Control-Expose-Headers"]
    stranger = await gateway.options("/oidc/token", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in stranger.headers
    assert "Access-Control-Allow-Origin" not in (await gateway.get("/oidc/x", headers={"Origin": "https://evil.example"})).headers


async def test_only_the_clients_own_headers_go_upstream(gateway):
    """No headers of the gateway's HTTP client (aiohttp's User-Agent, Accept, Accept-Encoding: a compressed answer
    would reach a client that never asked for one, the gateway passing bodies as they are)."""
    bare = await (await gateway.get("/oidc/x", skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))).json()
    assert {k: v for k, v in bare["headers"].items() if k in ("User-Agent", "Accept", "Accept-Encoding")} == \
        {"User-Agent": None, "Accept": None, "Accept-Encoding": None}
    own = await (await gateway.get("/oidc/x", headers={"User-Agent": "rp/1", "Accept-Encoding": "br"})).json()
    assert own["headers"]["User-Agent"] == "rp/1" and own["headers"]["Accept-Encoding"] == "br"
    assert own["headers"]["X-Forwarded-For"] == "127.0.0.1"


async def test_an_upstreams_cookie_is_never_sent_with_another_callers_request(gateway_by_name):
    """The gateway's pooled client session keeps no cookies: one browser's session cookie from auth goes back to
    that browser only, never along with the next caller's requests to auth."""
    first = await gateway_by_name.get("/oidc/login")
    assert first.cookies["session"].value == "browser-a-secret"  # passed on to the browser it was meant for
    gateway_by_name.session.cookie_jar.clear()  # the next caller is someone else: no cookies of their own
    second = await (await gateway_by_name.get("/oidc/x")).json()
    assert second["headers"]["Cookie"] is None


async def test_the_callers_trace_goes_upstream_in_a_context_of_the_gateways_when_nothing_is_sampled(gateway, monkeypatch):
    """Exporter `none` (the dev stack, the tests): spans are contexts only, made without the SDK's machinery; the
    upstream still gets the caller's trace with the gateway's own span id, unsampled, as the SDK would send it."""
    from opentelemetry import trace

    from libs.service.tracing import tracer_provider

    provider, exporter = tracer_provider("gateway", {})
    assert exporter == "none"
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    seen = await (await gateway.get("/oidc/x", headers={"traceparent": caller, "tracestate": "vendor=1"})).json()
    version, trace_id, span_id, flags = seen["headers"]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "00")
    assert span_id not in ("00f067aa0ba902b7", "0" * 16) and len(span_id) == 16
    assert seen["headers"]["tracestate"] == "vendor=1"
    # Without a caller's context the gateway begins the trace: flags as the SDK's own unsampled root span has them.
    root = provider.get_tracer("t").start_span("root").get_span_context()
    began = (await (await gateway.get("/oidc/x")).json())["headers"]["traceparent"].split("-")
    assert began[1] not in ("4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32) and began[3] == f"{int(root.trace_flags):02x}"


async def test_with_an_exporter_the_call_upstream_is_a_client_span_of_the_gateways_span(gateway):
    from opentelemetry.trace import SpanKind

    from ..support.tracing import hex_span, recorded_spans

    spans = recorded_spans()
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    seen = await (await gateway.get("/oidc/x", headers={"traceparent": caller})).json()
    [server] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    [client] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert server.name == "GET /oidc{tail*}" and f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert client.parent.span_id == server.context.span_id and client.attributes["http.response.status_code"] == 200
    assert seen["headers"]["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{hex_span(client)}-01"


async def test_forwarded_requests_share_one_kept_alive_connection(gateway):
    """The gateway's own client (services/gateway/upstream_client.py) keeps connections open and reuses them."""
    ports = {(await (await gateway.get("/oidc/x")).json())["peer_port"] for _ in range(10)}
    ports |= {(await (await gateway.post("/oidc/token", data={"a": "b"})).json())["peer_port"] for _ in range(5)}
    assert len(ports) == 1
    # A HEAD answer has no body whatever its Content-Length says: read as such, and the connection serves on.
    head = await gateway.head("/oidc/x")
    assert head.status == 200 and await head.read() == b""
    assert (await (await gateway.get("/oidc/x")).json())["peer_port"] in ports


async def test_a_connection_the_upstream_closed_while_idle_is_not_used_again():
    """A POST is never retried (it may have been handled): it must not be sent on a connection already closed."""
    from multidict import CIMultiDict

    from services.gateway.upstream_client import UpstreamClient

    connections = []

    async def answer_once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(3)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # as an upstream does when its keep-alive timeout passes

    server = await asyncio.start_server(answer_once_then_close, "127.0.0.1", 0)
    client = UpstreamClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connect_timeout_s=1, read_timeout_s=5)
    try:
        for _ in range(2):
            async with client.request("POST", "/oidc/token", CIMultiDict({"A": "1"}), b"a=b") as response:
                assert (response.status, await response.read()) == (200, b"ok")
            # Kept for reuse; then the upstream closes it, and the next request goes on a new connection.
            await eventually(lambda: not client._idle or not client._idle[0][0].is_connected(), timeout_s=10)
        assert len(connections) == 2
    finally:
        await client.close()
        server.close()
        await server.wait_closed()



async def test_kept_alive_connections_the_upstream_closes_as_requests_arrive_never_open_its_circuit():
    """An upstream closes an idle kept-alive connection when its keep-alive timeout passes; a request may be on its
    way on it just then. Eight requests at once on eight such connections were eight failures: the circuit opened
    and the next requests to a live service were 503 "failing" for five seconds. Now a GET is sent again on a new
    connection, and a POST (never sent twice) is a 503 that does not count against the circuit."""
    served_on = {}

    async def first_request_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers the first request of each connection, keeps it open, and closes it unanswered at the second:
        # the race between a keep-alive timeout and a request, every time.
        served_on[writer] = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                served_on[writer] += 1
                if served_on[writer] > 1:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(first_request_only, "127.0.0.1", 0)
    upstream = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    settings = GatewaySettings(service=ServiceSettings(service="gateway"), upstreams={name: upstream for name in UPSTREAMS},
                               upstream_timeout_s=5)
    try:
        async with TestClient(TestServer(create_app(settings))) as gateway:
            async def burst(method: str) -> list[int]:
                return [r.status for r in await asyncio.gather(*(gateway.request(method, "/oidc/x") for _ in range(8)))]

            assert await burst("GET") == [200] * 8  # eight connections, each kept for the next request
            assert await burst("GET") == [200] * 8  # each closed under its second request: sent again on a new one
            posts = await burst("POST")  # never sent twice: those that met a closing connection are 503, safe to retry
            assert set(posts) <= {200, 503} and 503 in posts
            # The circuit stayed closed: the service is served at once (old code: 503 "failing" for five seconds).
            after = await gateway.get("/oidc/x")
            assert after.status == 200, await after.text()
    finally:
        server.close()
        await server.wait_closed()



async def test_a_connection_idle_longer_than_the_pools_limit_is_not_used_again():
    """The gateway lets an idle connection go before the service would (aiohttp services close theirs at 75 s idle;
    the pool keeps one 15 s), so it rarely meets the service's keep-alive close at all."""
    from multidict import CIMultiDict

    from services.gateway.upstream_client import UpstreamClient

    server = TestServer(fake_upstream("auth"), host="127.0.0.1")
    await server.start_server()
    kept, expiring = (UpstreamClient(f"http://127.0.0.1:{server.port}", connect_timeout_s=1, read_timeout_s=5, idle_s=idle)
                      for idle in (60.0, 0.0))
    try:
        for client in (kept, expiring):
            ports = set()
            for _ in range(3):
                async with client.request("GET", "/oidc/x", CIMultiDict(), None) as response:
                    ports.add(json.loads(await response.read())["peer_port"])
            assert len(ports) == client.connections_made
        assert kept.connections_made == 1 and expiring.connections_made == 3
        assert not expiring._idle or len(expiring._idle) == 1  # the expired ones were closed, not kept
    finally:
        await kept.close()
        await expiring.close()
        await server.close()


def test_no_header_can_carry_a_line_break_upstream():
    from multidict import CIMultiDict

    from services.gateway.upstream_client import _header_bytes

    ok = _header_bytes("GET", "/x?y", "auth:8001", CIMultiDict({"A": "1"}), None)
    assert ok == b"GET /x?y HTTP/1.1\r\nHost: auth:8001\r\nA: 1\r\n\r\n"
    for smuggled in ("1\r\nX-Admin: yes", "1\nX: y", "1\rX: y"):
        with pytest.raises(ValueError):
            _header_bytes("GET", "/x", "auth:8001", CIMultiDict({"A": smuggled}), None)
    assert _header_bytes("POST", "/t", "auth", CIMultiDict(), 3).endswith(b"Content-Length: 3\r\n\r\n")


async def test_an_answer_that_is_not_http_is_a_502_problem_not_a_500():
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    broken = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    settings = GatewaySettings(service=ServiceSettings(service="gateway"), upstreams={name: broken for name in UPSTREAMS},
                               upstream_timeout_s=5)
    try:
        async with TestClient(TestServer(create_app(settings))) as gateway:
            response = await gateway.post("/oidc/token", data={"grant_type": "client_credentials"})
            assert response.status == 502
            problem = await response.json(content_type="application/problem+json")
            assert problem["upstream"] == "auth" and "broken" in problem["detail"]
    finally:
        server.close()
        await server.wait_closed()

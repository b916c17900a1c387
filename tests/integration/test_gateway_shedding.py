"""The gateway over real sockets when an upstream is dead, does not accept, or is saturated.

Its readiness is its own (the revocation list, read from the test broker): a dead upstream is reported in the
/readyz body and as `harbour_gateway_upstream_up`, its routes answer 503 at once, and every other route works.
Requests over an upstream's in-flight limit are refused at once with 503 and Retry-After instead of queueing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from libs.devstack.processes import free_port
from services.gateway.app import create_app
from services.gateway.breaker import CircuitBreaker
from services.gateway.proxy import Upstream as GatewayUpstream
from services.gateway.upstream_health import UpstreamHealth
from services.gateway.settings import UPSTREAMS, GatewaySettings

from ..support.polling import eventually

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


class Upstream:
    """A stand-in service: answers at once, or holds `/slow` requests and long polls (`?wait=`) until released."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.held = 0
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_route("*", "/{tail:.*}", self.answer)
        self.server = TestServer(app)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def answer(self, request: web.Request) -> web.Response:
        if request.path.endswith("/slow") or "wait" in request.query:
            self.held += 1
            await self.release.wait()
        return web.json_response({"service": self.name})

    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@contextmanager
def not_accepting() -> Iterator[str]:
    """A port that is listening but accepts no more connections (its queue full): a connect there never completes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        queued.append(filler)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for s in (*queued, listener):
            s.close()


async def _gateway(infra, upstreams: dict[str, str], **options) -> TestClient:
    settings = GatewaySettings(service=infra.settings("gateway"), upstreams=upstreams, **options)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


async def _ready(gateway: TestClient) -> dict:
    async def ready():
        response = await gateway.get("/readyz")
        return await response.json() if response.status == 200 else None

    return await eventually(ready, timeout_s=30)


def _up(upstream: str) -> float | None:
    return REGISTRY.get_sample_value("harbour_gateway_upstream_up", {"upstream": upstream})


@pytest.fixture
async def upstreams():
    started = {name: Upstream(name) for name in UPSTREAMS}
    for upstream in started.values():
        await upstream.server.start_server()
    yield started
    for upstream in started.values():
        upstream.release.set()
        await upstream.server.close()


async def test_a_dead_upstream_answers_503_at_once_while_the_gateway_stays_ready(infra, upstreams):
    urls = {name: upstream.url() for name, upstream in upstreams.items()}
    urls["formfill"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    gateway = await _gateway(infra, urls)
    try:
        ready = await _ready(gateway)
        assert "formfill" not in ready["checks"]  # the gateway's readiness is its own

        async def reported_down():
            report = (await (await gateway.get("/readyz")).json())["upstreams"]
            return report if report["formfill"] not in ("ok", "unknown") and report["auth"] == "ok" else None

        report = await eventually(reported_down, timeout_s=10)
        assert {report[name] for name in ("auth", "notify", "signing")} == {"ok"}
        assert _up("formfill") == 0 and _up("auth") == 1

        for _ in range(3):
            started = time.monotonic()
            response = await gateway.post("/v1/formfill/requests", json={})
            assert response.status == 503 and time.monotonic() - started < 1.0
            problem = await response.json(content_type=PROBLEM)
            assert problem["upstream"] == "formfill" and int(response.headers["Retry-After"]) >= 1
        assert (await gateway.get("/readyz")).status == 200
        other = await gateway.get("/oidc/x")
        assert other.status == 200 and (await other.json())["service"] == "auth"
    finally:
        await gateway.close()


async def test_a_service_that_dies_is_refused_at_once_and_served_again_within_a_second_of_coming_back(infra, upstreams):
    port = free_port()
    formfill = Upstream("formfill")
    formfill.server = TestServer(formfill.server.app, port=port)
    await formfill.server.start_server()
    urls = {name: upstream.url() for name, upstream in upstreams.items()} | {"formfill": f"http://127.0.0.1:{port}"}
    gateway = await _gateway(infra, urls)
    try:
        await _ready(gateway)
        await eventually(lambda: _up("formfill") == 1, timeout_s=10, interval_s=0.05)
        assert (await gateway.post("/v1/formfill/requests", json={})).status == 200

        await formfill.server.close()  # the service dies
        await eventually(lambda: _up("formfill") == 0, timeout_s=10, interval_s=0.05)
        refused = await gateway.post("/v1/formfill/requests", json={})
        # The probe saw it die and opened its circuit: refused without trying it.
        assert refused.status == 503 and "failing" in (await refused.json(content_type=PROBLEM))["detail"]

        formfill.server = TestServer(formfill.server.app, port=port)
        await formfill.server.start_server()  # ...and comes back on the same address
        started = time.monotonic()

        async def served():
            return (await gateway.post("/v1/formfill/requests", json={})).status == 200 or None

        # A down upstream is probed every 0.5 s; the first answer closes its circuit.
        await eventually(served, timeout_s=10, interval_s=0.05)
        assert time.monotonic() - started < 1.5
        assert _up("formfill") == 1
    finally:
        await gateway.close()
        await formfill.server.close()


async def test_an_upstream_that_does_not_accept_is_503_within_the_connect_timeout(infra, upstreams):
    with not_accepting() as stuck:
        urls = {name: upstream.url() for name, upstream in upstreams.items()} | {"formfill": stuck}
        gateway = await _gateway(infra, urls, upstream_connect_timeout_s=0.5)
        try:
            await _ready(gateway)
            for _ in range(3):
                started = time.monotonic()
                response = await gateway.post("/v1/formfill/requests", json={})
                # Refused by its breaker once a probe or a request met the timeout; never a 504 after a long wait.
                assert response.status == 503 and time.monotonic() - started < 1.5, response.status
                assert (await response.json(content_type=PROBLEM))["upstream"] == "formfill"
            assert (await gateway.get("/v1/signing/ca")).status == 200
        finally:
            await gateway.close()


async def test_requests_over_an_upstreams_in_flight_limit_are_503_at_once(infra, upstreams):
    auth = upstreams["auth"]
    gateway = await _gateway(infra, {name: upstream.url() for name, upstream in upstreams.items()}, upstream_max_in_flight=2)
    try:
        await _ready(gateway)
        held = [asyncio.create_task(gateway.get("/oidc/slow")) for _ in range(2)]
        await eventually(lambda: auth.held == 2, timeout_s=10, interval_s=0.01)
        assert REGISTRY.get_sample_value("harbour_gateway_upstream_in_flight_requests", {"upstream": "auth"}) == 2

        started = time.monotonic()
        refused = await gateway.get("/oidc/x")
        assert refused.status == 503 and time.monotonic() - started < 1.0
        assert refused.headers["Retry-After"] == "1"
        problem = await refused.json(content_type=PROBLEM)
        assert problem["type"].endswith("/upstream-overloaded") and problem["upstream"] == "auth"
        # The limit is per upstream: the other services' routes are untouched.
        assert (await gateway.get("/v1/signing/ca")).status == 200

        auth.release.set()
        assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
        assert (await gateway.get("/oidc/x")).status == 200
    finally:
        await gateway.close()


async def test_a_relying_partys_long_poll_holds_no_place_in_the_upstreams_limit(infra, upstreams):
    # A request held for its citizen's answer (?wait= on a request's status or result) idles for up to 20 s: counted,
    # a few hundred waiting relying parties would have every other request to that service refused. The service
    # bounds how many it holds (libs/held_requests.py). `wait` on any other route is no long poll.
    formfill = upstreams["formfill"]
    gateway = await _gateway(infra, {name: upstream.url() for name, upstream in upstreams.items()}, upstream_max_in_flight=1)
    try:
        await _ready(gateway)
        polls = [asyncio.create_task(gateway.get(path, params={"wait": "20"}))
                 for path in ("/v1/formfill/requests/r-1", "/v1/formfill/requests/r-1/result")]
        await eventually(lambda: formfill.held == 2, timeout_s=10, interval_s=0.01)
        assert REGISTRY.get_sample_value("harbour_gateway_upstream_in_flight_requests", {"upstream": "formfill"}) == 0
        assert (await gateway.get("/v1/formfill/requests/r-2")).status == 200

        counted = asyncio.create_task(gateway.get("/v1/formfill/jwks", params={"wait": "20"}))
        await eventually(lambda: formfill.held == 3, timeout_s=10, interval_s=0.01)
        refused = await gateway.get("/v1/formfill/requests/r-2")
        assert refused.status == 503 and (await refused.json(content_type=PROBLEM))["type"].endswith("/upstream-overloaded")

        formfill.release.set()
        assert [r.status for r in await asyncio.gather(*polls, counted)] == [200, 200, 200]

        # A new phone's question after its pairing, held by auth until the pairing moves: no place either.
        auth = upstreams["auth"]
        pairing = asyncio.create_task(gateway.get("/v1/devices/pairings/pair-1", params={"wait": "20"}))
        await eventually(lambda: auth.held == 1, timeout_s=10, interval_s=0.01)
        assert REGISTRY.get_sample_value("harbour_gateway_upstream_in_flight_requests", {"upstream": "auth"}) == 0
        assert (await gateway.get("/v1/devices/pairings/pair-2")).status == 200
        auth.release.set()
        assert (await pairing).status == 200
    finally:
        await gateway.close()


async def test_a_probe_that_times_out_leaves_the_circuit_closed_and_a_refused_one_opens_it(upstreams):
    """A probe's connection not accepted in time (a loaded host, a saturated service) is reported but opens no
    circuit: that would answer 503 to every route of a live service. A refused one opens it at once."""
    live = upstreams["auth"].url()
    async with aiohttp.ClientSession() as session:
        upstream = GatewayUpstream("auth", live, session, CircuitBreaker())
        health = UpstreamHealth({"auth": upstream}, probe_s=2.0, timeout_s=0.3)
        await health.probe(upstream)
        assert health.status["auth"] == "ok"  # seen up

        with not_accepting() as stuck:
            upstream.base_url = stuck
            for _ in range(2):
                await health.probe(upstream)
                assert health.status["auth"] == "timeout" and upstream.breaker.state == "closed"

        upstream.base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused
        await health.probe(upstream)
        assert upstream.breaker.state == "open"
        upstream.base_url = live
        await health.probe(upstream)
        assert upstream.breaker.state == "closed" and health.status["auth"] == "ok"

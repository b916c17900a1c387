"""The gateway's shared cache for public documents (services/gateway/cache.py), over real sockets.

A service stands behind the gateway and counts what reaches it: discovery is fetched once and then answered from
memory while the service's Cache-Control allows; callers with credentials, a query or their own `no-cache` go to
the service; answers the service marks private, or that set cookies or vary, are never stored; concurrent misses
reach the service once; one caller's Host cannot poison another's copy.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from libs.service import ServiceSettings
from libs.tokens import generate_private_key, public_jwk
from services.gateway.app import SHARED_CACHE, create_app
from services.gateway.settings import UPSTREAMS, GatewaySettings

from ..support.polling import eventually

pytestmark = pytest.mark.integration
DISCOVERY = "/.well-known/openid-configuration"
KEY = generate_private_key()


class Service:
    """The upstream: discovery answers with the headers a test sets, its body numbering each fetch."""

    def __init__(self) -> None:
        self.fetches = 0
        self.headers: dict[str, str] = {"Cache-Control": "max-age=300"}
        self.hold: asyncio.Event | None = None  # set: discovery waits for it (concurrent misses)
        self.seen: list[dict[str, str]] = []

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            self.fetches += 1
            self.seen.append(dict(request.headers))
            if self.hold is not None:
                await self.hold.wait()
            body = {"fetch": self.fetches, "host": request.headers.get("X-Forwarded-Host")}
            return web.json_response(body, headers=self.headers)

        async def jwks(request: web.Request) -> web.Response:
            return web.json_response({"keys": [{**public_jwk(KEY), "kid": "k1", "use": "sig", "alg": "ES256"}]})

        app = web.Application()
        app.router.add_get(DISCOVERY, discovery)
        app.router.add_get("/oidc/jwks", jwks)
        return app


@pytest.fixture
async def service():
    return Service()


@pytest.fixture
async def gateway(infra, service):
    upstream = TestServer(service.app())
    await upstream.start_server()
    base = str(upstream.make_url("")).rstrip("/")
    settings = GatewaySettings(service=ServiceSettings(service="gateway", kafka_bootstrap=infra.kafka_bootstrap),
                               upstreams=dict.fromkeys(UPSTREAMS, base), issuer="https://harbour.example")
    async with TestClient(TestServer(create_app(settings))) as client:

        async def ready():
            return (await client.get("/readyz")).status == 200

        await eventually(ready, timeout_s=60, interval_s=0.1)
        yield client
    await upstream.close()


def cache_count(result: str) -> float:
    return REGISTRY.get_sample_value("harbour_gateway_cache_requests_total", {"result": result}) or 0.0


async def fetch(gateway, **headers) -> tuple[web.Response, dict]:
    response = await gateway.get(DISCOVERY, headers=headers)
    assert response.status == 200, await response.text()
    return response, json.loads(await response.text())


async def test_discovery_is_fetched_once_then_answered_from_memory(gateway, service):
    hits = cache_count("hit")
    first, body = await fetch(gateway)
    assert "Age" not in first.headers
    ids = {first.headers["X-Request-Id"]}
    for _ in range(4):
        response, again = await fetch(gateway)
        assert again == body
        assert response.headers["Age"] == "0"
        assert response.headers["Cache-Control"] == "max-age=300"
        assert response.headers["Content-Type"].startswith("application/json")
        assert "RateLimit-Remaining" in response.headers  # the edge's own headers, per request
        ids.add(response.headers["X-Request-Id"])  # each answer its own request's id, not the stored one's
    assert service.fetches == 1
    assert len(ids) == 5
    assert cache_count("hit") - hits == 4


async def test_age_counts_up_and_an_expired_copy_is_fetched_again(gateway, service):
    now = [1000.0]
    gateway.server.app[SHARED_CACHE].clock = lambda: now[0]
    service.headers = {"Cache-Control": "public, max-age=60"}
    await fetch(gateway)
    now[0] += 42
    response, body = await fetch(gateway)
    assert (response.headers["Age"], body["fetch"], service.fetches) == ("42", 1, 1)
    now[0] += 18  # 60 s after it was stored: stale
    response, body = await fetch(gateway)
    assert ("Age" not in response.headers, body["fetch"], service.fetches) == (True, 2, 2)


async def test_a_caller_asking_for_a_younger_copy_gets_one_and_it_is_stored(gateway, service):
    now = [1000.0]
    gateway.server.app[SHARED_CACHE].clock = lambda: now[0]
    await fetch(gateway)
    now[0] += 100
    _, body = await fetch(gateway, **{"Cache-Control": "max-age=120"})
    assert (body["fetch"], service.fetches) == (1, 1)  # 100 s old: young enough
    _, body = await fetch(gateway, **{"Cache-Control": "max-age=60"})
    assert (body["fetch"], service.fetches) == (2, 2)  # too old for this caller: fetched anew
    now[0] += 250
    _, body = await fetch(gateway, **{"Cache-Control": "min-fresh=40"})
    assert (body["fetch"], service.fetches) == (2, 2)  # the second copy, 250 s old: fresh 50 s more
    _, body = await fetch(gateway, **{"Cache-Control": "min-fresh=60"})
    assert (body["fetch"], service.fetches) == (3, 3)  # not fresh long enough for this caller: fetched anew
    _, body = await fetch(gateway)
    assert (body["fetch"], service.fetches) == (3, 3)  # and stored for everyone


async def test_the_services_own_age_shortens_the_copys_life(gateway, service):
    now = [1000.0]
    gateway.server.app[SHARED_CACHE].clock = lambda: now[0]
    service.headers = {"Cache-Control": "max-age=300", "Age": "290"}  # it came from a cache itself: 10 s left
    await fetch(gateway)
    now[0] += 9
    response, _ = await fetch(gateway)
    assert service.fetches == 1
    assert response.headers["Age"] == "299"  # its own 290 and the 9 kept here
    now[0] += 1
    await fetch(gateway)
    assert service.fetches == 2


@pytest.mark.parametrize("headers", [
    {"Authorization": "Basic YWdlbmN5OnNlY3JldA=="},
    {"Cookie": "session=abc"},
    {"DPoP": "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig"},
    {"If-None-Match": '"x"'},
    {"Range": "bytes=0-10"},
], ids=["authorization", "cookie", "dpop", "conditional", "range"])
async def test_a_request_with_credentials_or_conditions_goes_to_the_service(gateway, service, headers):
    await fetch(gateway)
    response = await gateway.get(DISCOVERY, headers=headers)
    assert response.status == 200
    assert "Age" not in response.headers
    assert service.fetches == 2
    assert {k: service.seen[-1].get(k) for k in headers} == headers  # forwarded as sent


async def test_a_query_goes_to_the_service_and_is_not_stored(gateway, service):
    await fetch(gateway)
    response = await gateway.get(DISCOVERY + "?fresh=1")
    assert ((await response.json())["fetch"], service.fetches) == (2, 2)
    _, body = await fetch(gateway)
    assert (body["fetch"], service.fetches) == (1, 2)  # the stored copy, untouched


async def test_the_callers_no_cache_refreshes_the_copy_and_no_store_leaves_it(gateway, service):
    refreshes = cache_count("refresh")
    await fetch(gateway)
    for directive in ({"Cache-Control": "no-cache"}, {"Cache-Control": "max-age=0"}, {"Pragma": "no-cache"}):
        _, body = await fetch(gateway, **directive)
        assert body["fetch"] == service.fetches
        _, stored = await fetch(gateway)
        assert stored["fetch"] == service.fetches  # the new answer was stored
    assert service.fetches == 4
    _, body = await fetch(gateway, **{"Cache-Control": "no-store"})
    assert body["fetch"] == 5
    _, stored = await fetch(gateway)
    assert stored["fetch"] == 4  # no-store: fetched for that caller only
    assert cache_count("refresh") - refreshes == 4


@pytest.mark.parametrize("headers", [
    {},
    {"Cache-Control": "no-store"},
    {"Cache-Control": "private, max-age=300"},
    {"Cache-Control": "max-age=300, no-cache"},
    {"Cache-Control": "max-age=0"},
    {"Cache-Control": "max-age=soon"},
    {"Cache-Control": "max-age=300", "Set-Cookie": "session=abc"},
    {"Cache-Control": "max-age=300", "Vary": "Accept-Language"},
], ids=["no-cache-control", "no-store", "private", "no-cache", "max-age-0", "invalid-max-age", "set-cookie", "vary"])
async def test_answers_the_service_does_not_let_a_shared_cache_keep_are_not_stored(gateway, service, headers):
    service.headers = headers
    for expected in (1, 2, 3):
        response, body = await fetch(gateway)
        assert "Age" not in response.headers
        assert body["fetch"] == expected
    assert len(gateway.server.app[SHARED_CACHE]) == 0


async def test_a_copy_that_stopped_being_cacheable_is_dropped(gateway, service):
    await fetch(gateway)
    service.headers = {"Cache-Control": "no-store"}
    _, body = await fetch(gateway, **{"Cache-Control": "no-cache"})  # refreshed: the service now says no-store
    assert body["fetch"] == 2
    _, body = await fetch(gateway)
    assert (body["fetch"], service.fetches) == (3, 3)  # the old copy is not served any more


async def test_concurrent_misses_reach_the_service_once(gateway, service):
    shared = gateway.server.app[SHARED_CACHE]
    waiting = []
    real_in_flight = shared.in_flight

    def in_flight(key):  # a spy: which callers found another's fetch under way
        pending = real_in_flight(key)
        if pending is not None:
            waiting.append(key)
        return pending

    shared.in_flight = in_flight
    collapsed = cache_count("collapsed")
    service.hold = asyncio.Event()
    callers = [asyncio.ensure_future(fetch(gateway)) for _ in range(20)]
    await eventually(lambda: len(waiting) == 19, timeout_s=10, interval_s=0.02)
    # The first caller's fetch, held by the service: the others may find it under way before its request arrives
    # there (a loaded machine), so wait for the arrival, then see it was the only one.
    await eventually(lambda: service.fetches >= 1, timeout_s=10, interval_s=0.02)
    assert service.fetches == 1
    service.hold.set()
    answers = await asyncio.gather(*callers)
    assert [body["fetch"] for _, body in answers] == [1] * 20
    assert service.fetches == 1
    assert cache_count("collapsed") - collapsed == 19


async def test_callers_waiting_on_a_fetch_whose_answer_cannot_be_stored_fetch_their_own(gateway, service):
    shared = gateway.server.app[SHARED_CACHE]
    waiting = []
    real_in_flight = shared.in_flight
    shared.in_flight = lambda key: (pending := real_in_flight(key)) is not None and waiting.append(key) or pending
    service.headers = {"Cache-Control": "no-store"}
    service.hold = asyncio.Event()
    callers = [asyncio.ensure_future(fetch(gateway)) for _ in range(5)]
    await eventually(lambda: len(waiting) == 4, timeout_s=10, interval_s=0.02)
    service.hold.set()
    answers = await asyncio.gather(*callers)
    assert sorted(body["fetch"] for _, body in answers) == [1, 2, 3, 4, 5]  # none was handed another's answer


async def test_one_callers_host_does_not_poison_another_callers_copy(gateway, service):
    attacker, body = await fetch(gateway, Host="evil.example")
    assert body["host"] == "evil.example"  # the service reflected it (as a careless one could)
    victim, body = await fetch(gateway)
    assert body["host"] != "evil.example"
    assert service.fetches == 2
    _, body = await fetch(gateway, Host="evil.example")
    assert (body["host"], service.fetches) == ("evil.example", 2)  # each host its own copy

"""The service kit over real HTTP: an unavailable database or broker is 503 with Retry-After, and a process
over its in-flight limit refuses at once with 503 instead of queueing.

The exceptions are the ones PyMongo and aiokafka raise (a stalled database against a real server is
tests/service/test_database_stall.py); here they are raised by handlers, to hold the classification.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import errors as kafka_errors
from prometheus_client import REGISTRY
from pymongo import errors as mongo_errors

from libs.service import ServiceSettings, create_service_app
from libs.service.overload import IN_FLIGHT, mark_long_lived

PROBLEM = "application/problem+json"

UNAVAILABLE = {
    "server-selection": mongo_errors.ServerSelectionTimeoutError("no servers"),
    "network-timeout": mongo_errors.NetworkTimeout("timed out"),
    "auto-reconnect": mongo_errors.AutoReconnect("connection closed"),
    "wait-queue": mongo_errors.WaitQueueTimeoutError("pool"),
    "execution-timeout": mongo_errors.ExecutionTimeout("deadline", 50),
    "not-primary": mongo_errors.NotPrimaryError("not primary", {}),
    "shutting-down": mongo_errors.OperationFailure("shutdown in progress", 91),
    "transient-transaction": mongo_errors.OperationFailure("conflict", 112, {"errorLabels": ["TransientTransactionError"]}),
    "kafka-connection": kafka_errors.KafkaConnectionError("no broker"),
    "kafka-timeout": kafka_errors.KafkaTimeoutError(),
    "kafka-no-leader": kafka_errors.LeaderNotAvailableError(),
    "raised-from": RuntimeError("could not store"),
}
UNAVAILABLE["raised-from"].__cause__ = mongo_errors.ServerSelectionTimeoutError("no servers")
BUGS = {
    "duplicate-key": mongo_errors.DuplicateKeyError("dup", 11000),
    "bad-query": mongo_errors.OperationFailure("unknown operator", 2),
    "kafka-too-large": kafka_errors.MessageSizeTooLargeError(),
    "plain": ValueError("a bug"),
}


@pytest.fixture
async def client():
    app = create_service_app(ServiceSettings(service="shed-test", max_in_flight=2))
    entered: list[str] = []
    release = asyncio.Event()

    async def failing(request: web.Request) -> web.Response:
        raise {**UNAVAILABLE, **BUGS}[request.match_info["kind"]]

    async def slow(request: web.Request) -> web.Response:
        entered.append(request.path)
        await release.wait()
        return web.json_response({"done": True})

    app.router.add_get("/fail/{kind}", failing)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stream", slow)
    mark_long_lived(app, "/stream")
    async with TestClient(TestServer(app)) as client:
        client.entered, client.release = entered, release
        yield client
    release.set()


@pytest.mark.parametrize("kind", sorted(UNAVAILABLE))
async def test_an_unavailable_database_or_broker_is_503_with_retry_after(client, kind):
    response = await client.get(f"/fail/{kind}")
    assert response.status == 503 and response.content_type == PROBLEM
    assert int(response.headers["Retry-After"]) >= 1
    problem = await response.json(content_type=PROBLEM)
    assert problem["type"].endswith("/temporarily-unavailable") and problem["status"] == 503
    # The caller learns when to retry, not what the platform stands on.
    assert set(problem) == {"type", "title", "status", "detail", "instance"}
    assert not any(word in (problem["title"] + problem["detail"]).lower() for word in ("mongo", "kafka", "database", "broker"))


@pytest.mark.parametrize("kind", sorted(BUGS))
async def test_any_other_error_stays_a_500(client, kind):
    response = await client.get(f"/fail/{kind}")
    assert response.status == 500 and "Retry-After" not in response.headers


async def test_over_the_in_flight_limit_is_503_at_once_and_admitted_again_after(client):
    shed_before = REGISTRY.get_sample_value("harbour_http_shed_total", {"service": "shed-test", "reason": "overloaded"}) or 0
    slow = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
    while len(client.entered) < 2:
        await asyncio.sleep(0.01)
    # Probes and long-lived streams neither count nor are refused.
    stream = asyncio.create_task(client.get("/stream"))
    while len(client.entered) < 3:
        await asyncio.sleep(0.01)
    assert (await client.get("/readyz")).status == 200 and (await client.get("/healthz")).status == 200

    refused = await asyncio.wait_for(client.get("/slow"), timeout=2)
    assert refused.status == 503 and refused.headers["Retry-After"] == "1"
    problem = await refused.json(content_type=PROBLEM)
    assert problem["type"].endswith("/overloaded")
    assert REGISTRY.get_sample_value("harbour_http_shed_total", {"service": "shed-test", "reason": "overloaded"}) == shed_before + 1
    assert REGISTRY.get_sample_value("harbour_http_in_flight_requests", {"service": "shed-test"}) == 2

    client.release.set()
    assert [r.status for r in await asyncio.gather(*slow, stream)] == [200, 200, 200]
    assert (await client.get("/slow")).status == 200
    assert REGISTRY.get_sample_value("harbour_http_in_flight_requests", {"service": "shed-test"}) == 0


def _telling_app(service: str, routes: tuple[str, ...]) -> web.Application:
    """A service app whose routes answer whether their request is long-lived (overload.is_long_lived)."""
    from libs.service.overload import is_long_lived

    app = create_service_app(ServiceSettings(service=service))

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(is_long_lived(request))

    for route in routes:
        app.router.add_get(route, answer)
    return app


async def _long_lived(client: TestClient, path: str) -> bool:
    response = await client.get(path)
    assert response.status == 200
    return await response.json()


async def test_long_lived_routes_by_template_or_path_and_marked_later():
    """What a route's marks say is remembered per route (overload._MARKS_BY_RESOURCE): a template mark holds for every
    path of the route, a path mark for that path only, and a route marked after its first request is long-lived from
    then on."""
    app = _telling_app("long-lived-test", ("/streams/{id}", "/items/{name}", "/plain"))
    mark_long_lived(app, "/streams/{id}")
    mark_long_lived(app, "/items/special")
    async with TestClient(TestServer(app)) as client:
        paths = ("/streams/a", "/streams/b", "/items/special", "/items/other", "/plain")
        assert [await _long_lived(client, p) for p in paths] == [True, True, True, False, False]
        remembered = ("/streams/a", "/items/other", "/plain")
        assert [await _long_lived(client, p) for p in remembered] == [True, False, False]
        mark_long_lived(app, "/plain")  # marked after its first request
        assert await _long_lived(client, "/plain") is True and await _long_lived(client, "/items/other") is False


async def test_a_long_poll_is_long_lived_only_when_it_asks_to_be_held():
    """`mark_long_poll`: a request to the route with `?wait=` idles until its answer (outside the in-flight limit and
    the request deadline); the same route without it is an ordinary request, and `wait` elsewhere changes nothing."""
    from libs.service.overload import mark_long_poll

    app = _telling_app("long-poll-test", ("/requests/{id}", "/plain"))
    mark_long_poll(app, "/requests/{id}")
    async with TestClient(TestServer(app)) as client:
        paths = ("/requests/a?wait=5", "/requests/a", "/requests/b?wait=", "/plain?wait=5")
        assert [await _long_lived(client, p) for p in paths] == [True, False, True, False]


async def test_a_long_poll_holds_a_place_while_it_works_and_none_while_it_waits():
    """libs/waiting.py: a long poll is admitted and counted like any request (its reads, a 404, count against the
    limit), but while it only waits it gives its place back, so waiting relying parties never crowd the others out."""
    from libs.service.overload import mark_long_poll
    from libs.waiting import waiting_outside_the_count

    app = create_service_app(ServiceSettings(service="long-poll-count", max_in_flight=1))
    working, proceed, waiting, release = (asyncio.Event() for _ in range(4))

    async def held(request: web.Request) -> web.Response:
        working.set()
        await proceed.wait()  # its reads: counted
        with waiting_outside_the_count():
            waiting.set()
            await release.wait()
        return web.json_response({"in_flight_after": request.app[IN_FLIGHT].count})

    async def plain(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/requests/{id}", held)
    app.router.add_get("/plain", plain)
    mark_long_poll(app, "/requests/{id}")
    async with TestClient(TestServer(app)) as client:
        poll = asyncio.create_task(client.get("/requests/r-1", params={"wait": "20"}))
        await asyncio.wait_for(working.wait(), 10)
        assert (await client.get("/plain")).status == 503  # the limit of 1 is the working long poll's
        proceed.set()
        await asyncio.wait_for(waiting.wait(), 10)
        assert app[IN_FLIGHT].count == 0
        assert (await client.get("/plain")).status == 200  # while it waits, its place is free
        release.set()
        answer = await asyncio.wait_for(poll, 10)
        assert answer.status == 200 and await answer.json() == {"in_flight_after": 1}  # counted again after
        assert app[IN_FLIGHT].count == 0

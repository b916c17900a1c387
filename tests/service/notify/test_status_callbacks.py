"""An agency registers a callback URL; each status change is POSTed to it signed, retried with back-off, then given up.

The receiver is a real HTTP server on loopback (allowed for this test, as on
the dev stack); the back-off is passed by moving the clock.
"""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from services.notify.collections import CALLBACKS

from .conftest import problem


class Receiver:
    """The agency's endpoint: answers each POST with the next status of `answers` (then 204), keeping the bodies."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)
        self.bodies: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/jwt"
        self.bodies.append(await request.text())
        return web.Response(status=self.answers.pop(0) if self.answers else 204)

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/status", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.url = str(self.server.make_url("/status"))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.server.close()


@pytest.fixture(autouse=True)
def loopback_allowed(monkeypatch):
    monkeypatch.setenv("HARBOUR_OUTBOUND_ALLOW_LOOPBACK", "1")


async def registered(notify, agency, url: str) -> None:
    answer = await notify.http.put("/v1/notifications/callback", json={"url": url}, headers=notify.agency_token(agency))
    assert answer.status == 200, await answer.text()


async def test_a_refused_callback_is_retried_after_its_back_off_and_arrives_signed(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    async with Receiver(503) as receiver:
        await registered(notify, agency, receiver.url)
        shown = await (await notify.http.get("/v1/notifications/callback", headers=notify.agency_token(agency))).json()
        assert shown == {"url": receiver.url, "updated_at": notify.clock.now().isoformat()}
        status = await notify.delivered(agency, citizen, reference="R-1")

        await notify.timed_work()  # the first attempt: 503
        assert len(receiver.bodies) == 1
        waiting = await notify.ctx.db[CALLBACKS].find_one({"_id": f"{status['notification_id']}:delivered"})
        assert (waiting["state"], waiting["attempts"], waiting["last_error"]) == ("pending", 1, "answered 503")

        notify.clock.advance(0.9)  # callback_backoff_s is 1: not due yet
        await notify.timed_work()
        assert len(receiver.bodies) == 1
        notify.clock.advance(0.1)
        await notify.timed_work()
        assert len(receiver.bodies) == 2

    delivered = await notify.ctx.db[CALLBACKS].find_one({"_id": f"{status['notification_id']}:delivered"})
    assert (delivered["state"], delivered["attempts"]) == ("delivered", 2)
    jwks = jwcrypto_jwk.JWKSet.from_json(await (await notify.http.get("/v1/notifications/jwks")).text())
    token = jwcrypto_jws.JWS()
    token.deserialize(receiver.bodies[1])
    token.verify(jwks.get_key(token.jose_header["kid"]), alg="ES256")
    claims = json.loads(token.payload)
    assert token.jose_header["typ"] == "notification-status+jwt"
    assert (claims["aud"], claims["iss"], claims["jti"]) == (agency.client_id, f"{notify.auth.issuer}/v1/notifications",
                                                             f"{status['notification_id']}:delivered")
    assert (claims["notification_id"], claims["status"], claims["sub"], claims["reference"]) == (
        status["notification_id"], "delivered", citizen.sub, "R-1")


async def test_a_callback_refused_every_time_is_given_up_after_its_attempts(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    async with Receiver(*[500] * 10) as receiver:
        await registered(notify, agency, receiver.url)
        status = await notify.delivered(agency, citizen)
        for wait in (0, 1, 2, 4, 8, 16):  # six attempts: 1, 2, 4, 8, 16 s apart
            notify.clock.advance(wait)
            await notify.timed_work()
        notify.clock.advance(3600)
        await notify.timed_work()

    assert len(receiver.bodies) == 6
    given_up = await notify.ctx.db[CALLBACKS].find_one({"_id": f"{status['notification_id']}:delivered"})
    assert (given_up["state"], given_up["attempts"], given_up["last_error"]) == ("given_up", 6, "answered 500")


async def test_removing_the_url_stops_callbacks_and_a_refused_url_is_422(notify):
    agency = await notify.agency()
    async with Receiver() as receiver:
        await registered(notify, agency, receiver.url)
    removed = await notify.http.delete("/v1/notifications/callback", headers=notify.agency_token(agency))
    assert removed.status == 204
    none = await notify.http.get("/v1/notifications/callback", headers=notify.agency_token(agency))
    assert none.status == 404 and (await problem(none))["detail"] == "no callback is registered"

    # A well-formed URL whose name does not resolve: refused when it is registered, not at the first status.
    refused = await notify.http.put("/v1/notifications/callback", json={"url": "https://does-not-resolve.example/status"},
                                    headers=notify.agency_token(agency))
    assert refused.status == 422
    answer = await problem(refused)
    assert (answer["type"].rsplit("/", 1)[1], answer["title"]) == ("callback-url-refused", "Callback url refused")
    assert answer["detail"] == "the callback URL is refused: does-not-resolve.example does not resolve"
    # A special-use name is refused by the body's own validation, before any look-up.
    special = await notify.http.put("/v1/notifications/callback", json={"url": "https://localhost.localdomain:9/status"},
                                    headers=notify.agency_token(agency))
    assert special.status == 422 and (await problem(special))["type"].endswith("/validation-failed")

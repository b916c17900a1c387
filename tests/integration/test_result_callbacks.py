"""libs/result_callbacks.py against the real database and a real receiver: a refused connection retried with back-off
until the receiver is up, a receiver that never takes it given up after the configured tries (and counted), the
outbound rules at the call (loopback refused when not allowed: nothing reaches the receiver), and nothing queued for a
client without a callback URL. Time is moved with a FrozenClock instead of sleeping through the back-off."""

from __future__ import annotations

import json
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws
from prometheus_client import REGISTRY

from libs import result_callbacks
from libs.clock import FrozenClock
from libs.devstack.processes import free_port
from libs.outbound import Outbound
from libs.result_callbacks import RESULT_CALLBACKS, ResultCallbacks
from libs.store import apply_indexes
from libs.tokens.jwk import public_jwk
from libs.tokens.jws import sign

pytestmark = pytest.mark.integration


class Signer:
    """A service's TokenSigner in small: one ES256 key, its public half what the relying party verifies with."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = {**public_jwk(self.key), "kid": "k1"}

    async def sign(self, claims, *, typ):
        return sign({"iss": "https://id.example/v1/signing", **claims}, self.key, headers={"kid": "k1", "typ": typ})


class Rebinding(AbstractResolver):
    """Answers 127.0.0.1 for every name."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


class Receiver:
    def __init__(self, port: int, answer: int) -> None:
        self.port, self.answer = port, answer
        self.bodies: list[str] = []

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.bodies.append(await request.text())
            return web.Response(status=self.answer)

        app = web.Application()
        app.router.add_post("/results", handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self.runner.cleanup()


def claims_verified(body: str, signer: Signer) -> dict:
    token = jwcrypto_jws.JWS()
    token.deserialize(body)
    token.verify(jwcrypto_jwk.JWK(**signer.jwk), alg="ES256")
    assert token.jose_header["typ"] == "result-callback+jwt"
    return json.loads(token.payload)


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("harbour_result_callbacks_total", {"service": "signing", "outcome": outcome}) or 0.0


async def queued(db, clock, port: int, request_id: str) -> str:
    async with db.client.start_session() as session:
        callback_id = await result_callbacks.record(
            db, session, {"_id": "rp-1", "callback_urls": [f"http://127.0.0.1:{port}/results", "http://127.0.0.1:9/other"]},
            clock.now(), event="signature.completed", request_id=request_id, status="signed", sub="pairwise-1")
    assert callback_id is not None
    return callback_id


async def test_a_refused_connection_is_retried_with_back_off_until_the_receiver_takes_it(scratch_database):
    db, clock, signer = scratch_database, FrozenClock(), Signer()
    await apply_indexes(db, result_callbacks.INDEXES)
    port = free_port()
    callbacks = ResultCallbacks("signing", db, signer, clock, attempts=6, backoff_s=1.0, timeout_s=2.0)
    outbound = Outbound(allow_loopback=True, failure_ttl_s=0)
    callback_id = await queued(db, clock, port, "req-1")
    retried = counted("retried")

    # Nobody listens yet: connection refused, due again after 1 s, then 2 s; not before.
    assert await callbacks.send_due(outbound) == 1
    doc = await db[RESULT_CALLBACKS].find_one({"_id": callback_id})
    assert doc["state"] == "pending" and doc["attempts"] == 1 and "could not connect" in doc["last_error"]
    assert await callbacks.send_due(outbound) == 0  # backing off
    clock.advance(1)
    assert await callbacks.send_due(outbound) == 1
    clock.advance(1)
    assert await callbacks.send_due(outbound) == 0  # the second failure waits 2 s
    assert counted("retried") == retried + 2

    receiver = Receiver(port, 204)
    await receiver.start()
    try:
        clock.advance(1)
        delivered = counted("delivered")
        assert await callbacks.send_due(outbound) == 1
        [body] = receiver.bodies
        claims = claims_verified(body, signer)
        assert claims == {"iss": "https://id.example/v1/signing", "aud": "rp-1", "iat": claims["iat"], "exp": claims["iat"] + 300,
                          "jti": callback_id, "event": "signature.completed", "request_id": "req-1", "status": "signed",
                          "sub": "pairwise-1"}
        doc = await db[RESULT_CALLBACKS].find_one({"_id": callback_id})
        assert doc["state"] == "delivered" and doc["attempts"] == 3 and counted("delivered") == delivered + 1
        clock.advance(3600)
        assert await callbacks.send_due(outbound) == 0 and len(receiver.bodies) == 1  # 2xx ends it
    finally:
        await receiver.stop()


async def test_a_receiver_that_never_takes_it_is_given_up_after_the_configured_tries(scratch_database):
    db, clock, signer = scratch_database, FrozenClock(), Signer()
    port = free_port()
    receiver = Receiver(port, 503)
    await receiver.start()
    callbacks = ResultCallbacks("signing", db, signer, clock, attempts=3, backoff_s=1.0, timeout_s=2.0)
    outbound = Outbound(allow_loopback=True, failure_ttl_s=0)
    try:
        callback_id = await queued(db, clock, port, "req-2")
        given_up = counted("given_up")
        for _ in range(3):
            assert await callbacks.send_due(outbound) == 1
            clock.advance(3600)
        assert await callbacks.send_due(outbound) == 0
        doc = await db[RESULT_CALLBACKS].find_one({"_id": callback_id})
        assert (doc["state"], doc["attempts"], doc["last_error"]) == ("given_up", 3, "answered 503")
        assert len(receiver.bodies) == 3 and len({claims_verified(b, signer)["jti"] for b in receiver.bodies}) == 1
        assert counted("given_up") == given_up + 1
    finally:
        await receiver.stop()


async def test_the_outbound_rules_apply_at_the_call_and_a_client_without_a_url_gets_nothing(scratch_database):
    db, clock, signer = scratch_database, FrozenClock(), Signer()
    port = free_port()
    receiver = Receiver(port, 204)
    await receiver.start()
    try:
        # A public https name, answered with the loopback (DNS rebinding after registration): refused before connecting.
        async with db.client.start_session() as session:
            callback_id = await result_callbacks.record(
                db, session, {"_id": "rp-1", "callback_urls": [f"https://rp.example:{port}/results"]}, clock.now(),
                event="signature.completed", request_id="req-3", status="signed")
        callbacks = ResultCallbacks("signing", db, signer, clock, attempts=1, backoff_s=1.0, timeout_s=2.0)
        assert await callbacks.send_due(Outbound(allow_loopback=False, resolver=Rebinding())) == 1
        doc = await db[RESULT_CALLBACKS].find_one({"_id": callback_id})
        assert doc["state"] == "given_up" and doc["last_error"].startswith("refused") and "loopback" in doc["last_error"]
        assert receiver.bodies == []

        async with db.client.start_session() as session:
            for client in ({"_id": "rp-2", "callback_urls": []}, {"_id": "rp-3"}, None):
                assert await result_callbacks.record(db, session, client, clock.now(), event="formfill.release_ready",
                                                     request_id="req-4", status="approved") is None
        assert await db[RESULT_CALLBACKS].count_documents({"payload.request_id": "req-4"}) == 0
    finally:
        await receiver.stop()

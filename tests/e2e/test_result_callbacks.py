"""Result callbacks end to end (issue 20): a relying party that registered `callback_urls` is told, by a signed POST,
when a signature is done or refused and when a form-fill release is ready; polling stays.

The receiver is the relying party's own HTTP server (aiohttp on 127.0.0.1, allowed by the dev stack's outbound
settings); it verifies every body with jwcrypto against the keys the service publishes through the gateway, and
answers 503 to the first delivery to show the retry. A client without a callback URL gets nothing queued.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import requests
from aiohttp import web
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from libs.devstack import processes

from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.formfill import FIELDS, created, prompt_for as formfill_prompt_for, wait_for_status
from ..support.oidc import claims_of, logged_in_token, login, register
from ..support.polling import eventually
from ..support.signing import create, prompt_for, signing_rp, wait_for

SIGN_SCOPE = "openid sign"
FORMFILL_SCOPE = "openid formfill"


class Receiver:
    """The relying party's callback URL: answers the first `refuse_first` POSTs with 503, then 204; keeps each one."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.refuse_first = refuse_first
        self.received: list[dict] = []  # {"content_type", "body", "answered"}

    async def handle(self, request: web.Request) -> web.Response:
        answer = 503 if len(self.received) < self.refuse_first else 204
        self.received.append({"content_type": request.content_type, "body": await request.text(), "answered": answer})
        return web.Response(status=answer)

    async def __aenter__(self):
        app = web.Application()
        app.router.add_post("/results", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = processes.free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/results"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


JWKS = {"formfill": "/v1/formfill/jwks", "signing": "/v1/signing/jwks", "auth": "/oidc/jwks"}


def verified(platform, service: str, body: str) -> tuple[dict, dict]:
    """What the relying party does: the JWS checked with jwcrypto against the service's JWKS (through the gateway);
    (protected header, claims)."""
    jwks = jwcrypto_jwk.JWKSet.from_json(requests.get(platform.gateway + JWKS[service], timeout=10).text)
    token = jwcrypto_jws.JWS()
    token.deserialize(body)
    token.verify(jwks.get_key(token.jose_header["kid"]), alg="ES256")
    return token.jose_header, json.loads(token.payload)


def checked(platform, service: str, received: dict, client_id: str) -> dict:
    assert received["content_type"] == "application/jwt"
    header, claims = verified(platform, service, received["body"])
    assert header["typ"] == "result-callback+jwt" and header["alg"] == "ES256"
    issuer = requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10).json()["issuer"]
    assert claims["iss"] == (issuer if service == "auth" else f"{issuer}/v1/{service}") and claims["aud"] == client_id
    assert abs(claims["iat"] - time.time()) < 120 and claims["exp"] > claims["iat"] and claims["jti"].startswith("cb-")
    return claims


async def queued_for(platform, service: str, request_id: str) -> list[dict]:
    async with mongo(platform.infra.mongo_uri) as client:
        return await client[platform.database(service)]["result_callbacks"].find({"payload.request_id": request_id}).to_list()


async def test_a_signature_done_and_one_declined_are_called_back_signed_and_retried_after_a_refused_delivery(
        platform, kiosk, metadata, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path, "callback-phone")
    async with Receiver(refuse_first=1) as receiver:
        rp = signing_rp(platform, "Harbour Lands Registry", callback_urls=[receiver.url])
        token = await logged_in_token(metadata, rp, app, SIGN_SCOPE)
        document = f"Deed of assignment {uuid.uuid4()}\n".encode()
        request = await create(platform, token, json={"document_name": "deed.txt", "sha256": hashlib.sha256(document).hexdigest()})
        await app.approve((await prompt_for(app, request["request_id"]))["approval_id"])
        done = await wait_for(platform, token, request["request_id"], "signed")

        # Refused first (503), delivered on the retry: the same callback (jti) twice, then no more.
        await eventually(lambda: len(receiver.received) >= 2 and receiver.received, timeout_s=30)
        first, second = receiver.received[:2]
        assert (first["answered"], second["answered"]) == (503, 204)
        claims = checked(platform, "signing", second, rp["client_id"])
        assert checked(platform, "signing", first, rp["client_id"])["jti"] == claims["jti"]
        assert claims["event"] == "signature.completed" and claims["request_id"] == request["request_id"]
        assert claims["status"] == "signed" == done["status"] and claims["sub"] == claims_of(token)["sub"]
        assert "error" not in claims and "deed.txt" not in json.dumps(claims)  # ids and the status: nothing else
        [record] = await eventually(lambda: _delivered(platform, "signing", request["request_id"]), timeout_s=10)
        assert record["attempts"] == 2 and record["last_error"] == "answered 503"

        # Declined by the citizen: signature.refused, with the status and error polling shows.
        declined = await create(platform, token, json={"document_name": "other.txt", "sha256": hashlib.sha256(b"other").hexdigest()})
        await app.deny((await prompt_for(app, declined["request_id"]))["approval_id"])
        closed = await wait_for(platform, token, declined["request_id"], "denied")

        def refusal():
            bodies = [checked(platform, "signing", r, rp["client_id"]) for r in receiver.received if r["answered"] == 204]
            return next((c for c in bodies if c["request_id"] == declined["request_id"]), None)

        refused = await eventually(refusal, timeout_s=30)
        assert refused["event"] == "signature.refused" and refused["status"] == "denied" == closed["status"]
        assert refused["error"] == "denied" and refused["sub"] == claims_of(token)["sub"]

    # A client without a callback URL: its outcome is recorded, no callback queued.
    quiet = signing_rp(platform, "Harbour Quiet Registry")
    quiet_token = await logged_in_token(metadata, quiet, app, SIGN_SCOPE)
    silent = await create(platform, quiet_token, json={"document_name": "q.txt", "sha256": hashlib.sha256(b"quiet").hexdigest()})
    await app.approve((await prompt_for(app, silent["request_id"]))["approval_id"])
    await wait_for(platform, quiet_token, silent["request_id"], "signed")
    assert await queued_for(platform, "signing", silent["request_id"]) == []


async def _delivered(platform, service: str, request_id: str) -> list[dict] | None:
    records = await queued_for(platform, service, request_id)
    return records if records and all(r["state"] == "delivered" for r in records) else None


async def test_a_form_fill_release_is_called_back_with_its_request_and_status(platform, kiosk, metadata, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path, "callback-formfill")
    async with Receiver() as receiver:
        rp = register(platform, client_name="Harbour Water", scope=FORMFILL_SCOPE, formfill_fields=FIELDS,
                      callback_urls=[receiver.url])
        token = await logged_in_token(metadata, rp, app, FORMFILL_SCOPE)
        request = await created(platform, token, [("name_en", True), ("email", False)])
        await app.approve((await formfill_prompt_for(app, request["request_id"]))["approval_id"])
        done = await wait_for_status(platform, token, request["request_id"], "approved")

        await eventually(lambda: receiver.received, timeout_s=30)
        claims = checked(platform, "formfill", receiver.received[0], rp["client_id"])
        # One callback (a retry after a lost answer would repeat its jti, never add another).
        assert {checked(platform, "formfill", r, rp["client_id"])["jti"] for r in receiver.received} == {claims["jti"]}
        assert claims["event"] == "formfill.release_ready" and claims["request_id"] == request["request_id"]
        assert claims["status"] == "approved" == done["status"] and claims["sub"] == claims_of(token)["sub"]
        assert "fields" not in claims and "purpose" not in claims  # the release itself is fetched, as before
        await eventually(lambda: _delivered(platform, "formfill", request["request_id"]), timeout_s=10)

    # Without a callback URL: nothing queued.
    quiet = register(platform, client_name="Harbour Gas", scope=FORMFILL_SCOPE, formfill_fields=FIELDS)
    quiet_token = await logged_in_token(metadata, quiet, app, FORMFILL_SCOPE)
    silent = await created(platform, quiet_token, [("name_en", True)])
    await app.approve((await formfill_prompt_for(app, silent["request_id"]))["approval_id"])
    await wait_for_status(platform, quiet_token, silent["request_id"], "approved")
    assert await queued_for(platform, "formfill", silent["request_id"]) == []


async def test_a_ciba_login_approved_and_one_declined_are_called_back_with_their_auth_req_id(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path, "callback-ciba")
    async with Receiver() as receiver:
        call_centre = register(platform, client_name="Tax Hotline", callback_urls=[receiver.url])
        sub = claims_of((await login(platform, metadata, call_centre, citizen))[0]["id_token"])["sub"]
        auth = (call_centre["client_id"], call_centre["client_secret"])
        outcomes = {}
        for message, decide in (("Call 4821", citizen.approve), ("Call 4822", citizen.deny)):
            started = requests.post(metadata["backchannel_authentication_endpoint"],
                                    data={"scope": "openid", "login_hint": sub, "binding_message": message}, auth=auth, timeout=10)
            assert started.status_code == 200, started.text
            request_id = started.json()["auth_req_id"]
            prompt = await eventually(lambda message=message: _prompt(citizen, message), timeout_s=20)
            await decide(prompt["approval_id"])

            def called(request_id=request_id):
                bodies = [checked(platform, "auth", r, call_centre["client_id"]) for r in receiver.received]
                return next((c for c in bodies if c["request_id"] == request_id), None)

            outcomes[message] = await eventually(called, timeout_s=30)
        approved, declined = outcomes["Call 4821"], outcomes["Call 4822"]
        assert (approved["event"], approved["status"], approved["sub"]) == ("login.completed", "approved", sub)
        assert (declined["event"], declined["status"], declined["error"]) == ("login.denied", "denied", "access_denied")
        # The browser login above (its outcome went by its redirect) was not called back: only the two CIBA requests.
        bodies = [checked(platform, "auth", r, call_centre["client_id"]) for r in receiver.received]
        assert {c["jti"] for c in bodies} == {approved["jti"], declined["jti"]}


async def _prompt(citizen, binding_message: str) -> dict | None:
    return next((p for p in await citizen.pending() if p["details"].get("binding_message") == binding_message), None)

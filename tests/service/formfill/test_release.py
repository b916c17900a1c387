"""The citizen approves: formfill checks the device's signature itself, releases once, and leaves a receipt."""

from __future__ import annotations

import hashlib
import json

import jwt
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from libs.tokens import load_public_jwk, unverified_header
from tests.support.audit import no_personal_data
from tests.support.auth_stand_in import outbox_topics, published

from .conftest import PROFILE, problem


async def release_token(formfill, rp, request_id) -> tuple[str, str]:
    answer = await formfill.result(rp, request_id)
    assert answer.status == 200, await answer.text()
    assert answer.headers["Cache-Control"] == "no-store"
    return await answer.text(), answer.content_type


async def verified(formfill, token: str, audience: str) -> dict:
    """The release's claims, its signature checked against formfill's published JWKS as a relying party would.

    Its times are the service's frozen clock's (2030), so they are compared with that clock, not checked by PyJWT.
    """
    jwks = await (await formfill.http.get("/v1/formfill/jwks")).json()
    [key] = [k for k in jwks["keys"] if k["kid"] == unverified_header(token)["kid"]]
    return jwt.decode(token, load_public_jwk(key), algorithms=["ES256"], audience=audience,
                      options={"require": ["iat", "exp", "jti"], "verify_exp": False, "verify_iat": False})


async def test_approved_with_an_optional_field_dropped_releases_the_rest_once(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub, fields=[("name_en", True), ("email", False), ("phone", False)],
                                            standing=True)).json())["request_id"]
    prompt = await formfill.prompt(request_id)

    await formfill.learn(citizen.phone.decided(prompt, selection=["phone"]))

    status = await (await formfill.status(rp, request_id)).json()
    assert status["status"] == "approved" and status["released_fields"] == ["name_en", "phone"]
    token, media_type = await release_token(formfill, rp, request_id)
    assert media_type == "application/jwt"
    claims = await verified(formfill, token, rp.client_id)
    assert claims["fields"] == {"name_en": PROFILE["name_en"], "phone": PROFILE["phone"]}
    assert (claims["aud"], claims["sub"], claims["request_id"], claims["jti"]) == (rp.client_id, citizen.sub, request_id, status["receipt_id"])
    assert claims["purpose"] == "Open a water account"
    assert claims["iat"] == int(formfill.clock.now().timestamp()) and claims["exp"] == claims["iat"] + 600
    # Once: read again, it is gone.
    again = await formfill.result(rp, request_id)
    assert again.status == 410
    assert (await problem(again))["detail"] == "the result was already read or has expired"
    assert (await formfill.ctx.db["requests"].find_one({"_id": request_id}))["result_read_at"] == formfill.clock.now()


async def test_the_release_is_encrypted_to_the_clients_key(formfill):
    key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    rp = await formfill.relying_party(encryption_jwk=json.loads(key.export_public()))
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub)).json())["request_id"]
    await formfill.learn(citizen.phone.decided(await formfill.prompt(request_id)))

    token, media_type = await release_token(formfill, rp, request_id)

    assert media_type == "application/jose"
    sealed = jwcrypto_jwe.JWE()
    sealed.deserialize(token, key=key)
    claims = await verified(formfill, sealed.payload.decode(), rp.client_id)
    assert claims["fields"] == {"name_en": PROFILE["name_en"], "email": PROFILE["email"]}


async def test_the_release_leaves_a_receipt_an_event_and_an_audit_record(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub, purpose="Open a water account")).json())["request_id"]
    await formfill.learn(citizen.phone.decided(await formfill.prompt(request_id)))
    receipt_id = (await (await formfill.status(rp, request_id)).json())["receipt_id"]

    [granted] = await published(formfill.ctx, "consent.granted", receipt_id)
    assert granted.source == "/formfill" and granted.time == formfill.clock.now()
    assert granted.data == {"receipt_id": receipt_id, "request_id": request_id, "sub": citizen.sub,
                            "fields": ["name_en", "email"], "standing": False}
    assert await outbox_topics(formfill.ctx, "consent.granted") == [f"agency.{rp.client_id}.events"]
    audits = [e.data for e in await published(formfill.ctx, "audit.recorded", citizen.account_id)]
    # The citizen's record: to whom, which fields (names), the purpose as its hash only (the receipt has the text).
    assert {"action": "formfill.release", "actor": citizen.phone.device_id, "outcome": "success",
            "client_id": rp.client_id, "receipt_id": receipt_id, "request_id": request_id, "fields": ["name_en", "email"],
            "standing": False, "purpose_sha256": hashlib.sha256(b"Open a water account").hexdigest()} in audits
    no_personal_data(audits, "Open a water account", PROFILE["name_en"], PROFILE["email"])
    receipts = await (await formfill.http.get("/v1/consents", headers=formfill.device_token(citizen))).json()
    assert [(c["receipt_id"], c["purpose"], c["fields"]) for c in receipts["consents"]] == [
        (receipt_id, "Open a water account", ["name_en", "email"])]


async def test_an_unread_release_expires(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub)).json())["request_id"]
    await formfill.learn(citizen.phone.decided(await formfill.prompt(request_id)))

    formfill.clock.advance(601)  # FORMFILL_RESULT_TTL_S

    late = await formfill.result(rp, request_id)
    assert late.status == 410 and (await problem(late))["type"].endswith("/gone")
    assert (await (await formfill.status(rp, request_id)).json())["status"] == "approved"

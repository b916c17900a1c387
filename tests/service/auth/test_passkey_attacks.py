"""Passkeys attacked from outside (issue 21): what a caller who is not the citizen's own web app could send to
POST /v1/devices, /v1/devices/pairings and /v1/approvals/{id}/decision - replayed or malformed registrations, a
credential already bound elsewhere, assertions by other devices or over other prompts, replays and races. Each is
refused with a 4xx problem and nothing bound or decided."""

from __future__ import annotations

import asyncio
import base64
import json

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client import REGISTRY

from libs import base64url
from libs.approvals import ApprovalRequest, sign_decision
from libs.tokens import public_jwk

from ...support.webauthn_authenticator import PasskeyPhone, SoftAuthenticator, token_challenge_bytes
from .oidc_steps import register
from .test_passkeys import bound_web_phone, login_prompt, origin_of, refused, web_phone


def b64(data: bytes) -> str:
    return base64url.encode(data)


async def binding_body(phone: PasskeyPhone, enrolment: dict, **passkey_options) -> tuple[dict, str]:
    """A POST /v1/devices body with a passkey over its nonce (register()'s options), and that nonce."""
    key, proof, nonce = await phone.fresh_nonce_and_proof()
    phone.profile.device_name = "attacker"
    phone._keep_key(key, None)
    return {"account_id": enrolment["account_id"], "activation_code": enrolment["activation_code"],
            "public_key": public_jwk(key), "device_name": "attacker", "proof": proof,
            "key_protection": {"storage": "software", "user_verification": "passkey"},
            "passkey": phone.authenticator.register(nonce.encode(), **passkey_options)}, nonce


def _nonce_of(body: dict) -> str:
    return json.loads(base64url.decode(body["proof"].split(".")[1]))["nonce"]


async def problem(response, status: int, slug: str | None = None) -> dict:
    assert response.status == status, (response.status, await response.text())
    assert response.content_type == "application/problem+json"
    body = await response.json()
    if slug:
        assert body["type"].endswith(f"/{slug}"), body
    return body


async def nothing_bound(auth_service, account_id: str) -> None:
    db = auth_service.context.db
    assert await db["devices"].count_documents({"account_id": account_id}) == 0
    assert (await db["accounts"].find_one({"_id": account_id}))["activation"]["status"] == "open"


async def test_a_registration_replayed_or_malformed_binds_nothing(auth_service, tmp_path):
    client = auth_service.client
    enrolment = await auth_service.enrolled(tmp_path)
    phone = await web_phone(auth_service, tmp_path)
    body, _ = await binding_body(phone, enrolment)
    attestation = base64url.decode(body["passkey"]["response"]["attestationObject"])
    # Trailing bytes after the CBOR attestation object, or after its authenticator data: not what was signed.
    for tampered in (attestation + b"\x00garbage",
                     cbor2.dumps({**cbor2.loads(attestation), "authData": cbor2.loads(attestation)["authData"] + b"xx"})):
        wrong = {**body, "passkey": {**body["passkey"], "response": {**body["passkey"]["response"],
                                                                    "attestationObject": b64(tampered)}}}
        await problem(await client.post("/v1/devices", json=wrong), 400, "invalid-passkey")
    # Over the limits the model sets (16 KiB attestation, 4 KiB client data, 1400-character id): 422, not 500.
    for member, size in (("attestationObject", 16385), ("clientDataJSON", 4097)):
        huge = {**body, "passkey": {**body["passkey"], "response": {**body["passkey"]["response"], member: "A" * size}}}
        await problem(await client.post("/v1/devices", json=huge), 422)
    await problem(await client.post("/v1/devices", json={**body, "passkey": {**body["passkey"], "id": "A" * 1401}}), 422)
    # A body far over the server's size limit: refused before it is read as JSON.
    await problem(await client.post("/v1/devices", data=b'{"passkey": "' + b"A" * 5_000_000 + b'"}',
                                    headers={"Content-Type": "application/json"}), 413)
    # The id the JSON says is not the credential the attestation carries.
    other_id = {**body["passkey"], "id": b64(b"another-credential"), "rawId": b64(b"another-credential")}
    await problem(await client.post("/v1/devices", json={**body, "passkey": other_id}), 400, "invalid-passkey")
    # Not base64url, a wrong type, a passkey that is not an object: the body is invalid.
    for garbage in ("x", 1, [], {**body["passkey"], "type": "password"},
                    {**body["passkey"], "response": {**body["passkey"]["response"], "attestationObject": "<img>"}}):
        await problem(await client.post("/v1/devices", json={**body, "passkey": garbage}), 422)
    await nothing_bound(auth_service, enrolment["account_id"])
    # Every refusal above left the nonce unused (checked before it is consumed): the genuine request binds once...
    assert (await client.post("/v1/devices", json=body)).status == 201
    # ...and the same registration sent again is refused (its credential is registered), and so is a new passkey
    # over the same nonce and proof (the nonce was used).
    await problem(await client.post("/v1/devices", json={**body, "device_name": "replayed"}), 409, "passkey-already-registered")
    phone.passkey_for("localhost", origin_of(auth_service))
    used_nonce = {**body, "passkey": phone.authenticator.register(_nonce_of(body).encode())}
    await problem(await client.post("/v1/devices", json=used_nonce), 400, "invalid-nonce")
    assert await auth_service.context.db["devices"].count_documents({"account_id": enrolment["account_id"]}) == 1


async def test_a_passkey_already_bound_to_another_device_is_refused(auth_service, tmp_path):
    """WebAuthn §7.1 step 27: a credential id already registered (for this or another account) fails the ceremony.
    Someone who saw a citizen's registration can make the same authenticator data over their own nonce only with the
    credential's key - but a credential id claimed twice would make the two devices' passkeys indistinguishable."""
    victim = await bound_web_phone(auth_service, tmp_path)
    enrolment = await auth_service.enrolled(tmp_path)
    attacker = await web_phone(auth_service, tmp_path, "attacker")
    attacker.authenticator = victim.authenticator  # the same credential (id and key) registered a second time
    body, _ = await binding_body(attacker, enrolment)
    detail = (await problem(await auth_service.client.post("/v1/devices", json=body), 409, "passkey-already-registered"))["detail"]
    assert "already registered" in detail
    await nothing_bound(auth_service, enrolment["account_id"])
    # The same through pairing (a new phone added from an old one): refused before any pairing is started.
    key, proof, nonce = await attacker.fresh_nonce_and_proof()
    pairing = {"public_key": public_jwk(key), "device_name": "attacker", "proof": proof,
               "key_protection": {"storage": "software", "user_verification": "passkey"},
               "passkey": victim.authenticator.register(nonce.encode())}
    await problem(await auth_service.client.post("/v1/devices/pairings", json=pairing), 409, "passkey-already-registered")
    assert await auth_service.context.db["device_pairings"].count_documents({}) == 0
    # A new credential binds.
    attacker.passkey_for("localhost", origin_of(auth_service))
    await attacker.activate_with_passkey(enrolment["account_id"], enrolment["activation_code"])


async def test_a_pairing_that_says_passkey_needs_one(auth_service, tmp_path):
    phone = await web_phone(auth_service, tmp_path)
    key, proof, nonce = await phone.fresh_nonce_and_proof()
    body = {"public_key": public_jwk(key), "device_name": "new", "proof": proof,
            "key_protection": {"storage": "software", "user_verification": "passkey"}}
    await problem(await auth_service.client.post("/v1/devices/pairings", json=body), 422)
    body |= {"key_protection": {"storage": "software", "user_verification": "none"},
             "passkey": phone.authenticator.register(nonce.encode())}
    await problem(await auth_service.client.post("/v1/devices/pairings", json=body), 422)
    assert await auth_service.context.db["device_pairings"].count_documents({}) == 0


async def second_passkey_device(auth_service, phone: PasskeyPhone, tmp_path) -> PasskeyPhone:
    """Another web phone of the same account, added by pairing from `phone`."""
    other = await web_phone(auth_service, tmp_path, "second")
    started = await other.start_pairing_with_passkey("second phone")
    pending = await phone.claim_pairing(started["code"])
    await phone.decide_with_passkey(pending["approval_id"], "approve")
    assert (await other.finish_pairing(timeout_s=10, interval_s=0.05))["status"] == "bound"
    return other


async def test_an_assertion_by_another_devices_passkey_is_refused(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    sibling = await second_passkey_device(auth_service, phone, tmp_path)  # same account
    (tmp_path / "stranger").mkdir()
    stranger = await bound_web_phone(auth_service, tmp_path / "stranger")  # another account
    rp = await register(auth_service)
    prompt, _, _ = await login_prompt(auth_service, phone, rp)
    challenge = base64url.decode(prompt["digest"])
    # Each a genuine, user-verified assertion over this very prompt's digest - by another device's credential.
    for other in (sibling, stranger):
        detail = await refused(phone.decide_with_passkey(prompt["approval_id"], "approve",
                                                         assertion=other.authenticator.assertion(challenge)),
                               403, "user-verification-required")
        assert "another credential" in detail
        # The same assertion with the credential id rewritten to this device's: its signature is not this key's.
        forged = other.authenticator.assertion(challenge)
        forged |= {"id": b64(phone.authenticator.credential_id), "rawId": b64(phone.authenticator.credential_id)}
        await refused(phone.decide_with_passkey(prompt["approval_id"], "approve", assertion=forged),
                      403, "user-verification-required")
    # The sibling's own decision JWS cannot carry this device's assertion either (its credential is not this one).
    await refused(sibling.decide_with_passkey(prompt["approval_id"], "approve",
                                              assertion=phone.authenticator.assertion(challenge)),
                  403, "user-verification-required")
    assert (await phone.show(prompt["approval_id"]))["status"] == "pending"
    assert (await phone.decide_with_passkey(prompt["approval_id"], "approve"))["status"] == "approved"


async def test_an_assertion_for_one_prompt_never_approves_another(auth_service, tmp_path):
    """Authenticators that keep no sign count (0 and 0, allowed by WebAuthn §6.1.1) are accepted: the challenge is
    the prompt's digest, which covers its approval id, and a prompt is decided once - so an assertion replayed on
    another prompt is refused for its challenge, not its count."""
    phone = await bound_web_phone(auth_service, tmp_path)
    # Counterless for its device tokens' unlocking too.
    phone.unlock = lambda assertion: phone.authenticator.assertion(token_challenge_bytes(assertion), sign_count=0)
    rp = await register(auth_service)
    first, _, _ = await login_prompt(auth_service, phone, rp)
    second, _, _ = await login_prompt(auth_service, phone, rp)
    assert first["digest"] != second["digest"]
    captured = phone.authenticator.assertion(base64url.decode(first["digest"]), sign_count=0)
    detail = await refused(phone.decide_with_passkey(second["approval_id"], "approve", assertion=captured),
                           403, "user-verification-required")
    assert "does not verify" in detail
    assert (await phone.decide_with_passkey(first["approval_id"], "approve", assertion=captured))["status"] == "approved"
    # Replayed on the prompt it was made for, now decided: refused as such.
    await refused(phone.decide_with_passkey(first["approval_id"], "approve", assertion=captured), 409, "already-decided")
    # A new assertion over the second prompt (count 0 again) verifies.
    assert (await phone.decide_with_passkey(second["approval_id"], "approve", sign_count=0))["status"] == "approved"
    device = await auth_service.context.db["devices"].find_one({"_id": phone.profile.device_id})
    assert device["passkey"]["sign_count"] == 0


async def test_two_approvals_racing_with_one_assertion_decide_once(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    rp = await register(auth_service)
    prompt, _, _ = await login_prompt(auth_service, phone, rp)
    approval_id, digest = prompt["approval_id"], prompt["digest"]
    await phone.device_token()  # unlocked first (its own count), as the web app does before asserting for a decision
    assertion = phone.authenticator.assertion(base64url.decode(digest))
    decisions = [sign_decision(phone._unlock()[0], device_id=phone.profile.device_id, approval_id=approval_id,
                               digest=digest, decision="approve", uv="passkey") for _ in range(4)]
    answers = await asyncio.gather(*(phone._as_device("POST", f"/v1/approvals/{approval_id}/decision",
                                                      json={"decision": jws, "passkey": assertion})
                                     for jws in decisions), return_exceptions=True)
    approved = [a for a in answers if isinstance(a, dict)]
    refusals = [a for a in answers if not isinstance(a, dict)]
    assert len(approved) == 1 and approved[0]["status"] == "approved", answers
    assert all(getattr(r, "status", None) in (403, 409) for r in refusals), refusals
    db = auth_service.context.db
    assert (await db["devices"].find_one({"_id": phone.profile.device_id}))["passkey"]["sign_count"] == \
        phone.authenticator.sign_count
    assert await db["approvals"].count_documents({"_id": approval_id, "status": "approved"}) == 1


async def test_a_denial_with_garbage_changes_nothing_and_a_well_formed_one_needs_no_assertion(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    rp = await register(auth_service)
    prompt, _, _ = await login_prompt(auth_service, phone, rp)
    approval_id, digest = prompt["approval_id"], prompt["digest"]
    deny = sign_decision(phone._unlock()[0], device_id=phone.profile.device_id, approval_id=approval_id,
                         digest=digest, decision="deny")
    for garbage in ("<script>", 42, {"id": "x"}, {"type": "public-key", "id": "!!", "rawId": "!!", "response": {}}):
        with pytest.raises(Exception) as refusal:
            await phone._as_device("POST", f"/v1/approvals/{approval_id}/decision", json={"decision": deny, "passkey": garbage})
        assert refusal.value.status == 422, refusal.value
        assert (await phone.show(approval_id))["status"] == "pending"
    for garbage in ("not a jws", "a.b.c", base64.b64encode(b"x" * 100).decode()):
        with pytest.raises(Exception) as refusal:
            await phone._as_device("POST", f"/v1/approvals/{approval_id}/decision", json={"decision": garbage})
        assert refusal.value.status in (400, 422), refusal.value
    assert (await phone.show(approval_id))["status"] == "pending"
    # A well-formed assertion that does not verify is not looked at for a denial: the citizen can always say no.
    stranger = SoftAuthenticator("evil.example", "https://evil.example")
    body = {"decision": deny, "passkey": stranger.assertion(b"\x00" * 32)}
    assert (await phone._as_device("POST", f"/v1/approvals/{approval_id}/decision", json=body))["status"] == "denied"
    request = ApprovalRequest.model_validate(prompt["request"])
    assert request.digest() == digest


async def test_one_credential_raced_onto_two_accounts_binds_once(auth_service, tmp_path):
    """Both requests pass the look-up before either is stored: the devices' unique index stops the second."""
    shared = SoftAuthenticator("localhost", origin_of(auth_service))
    bodies = []
    for name in ("first", "second"):
        enrolment = await auth_service.enrolled(tmp_path)
        phone = await web_phone(auth_service, tmp_path, name)
        phone.authenticator = shared
        bodies.append((await binding_body(phone, enrolment))[0])
    answers = await asyncio.gather(*(auth_service.client.post("/v1/devices", json=body) for body in bodies))
    assert sorted(answer.status for answer in answers) == [201, 409], [answer.status for answer in answers]
    db = auth_service.context.db
    assert await db["devices"].count_documents({"passkey.credential_id": b64(shared.credential_id)}) == 1
    [refused_answer] = [answer for answer in answers if answer.status == 409]
    await problem(refused_answer, 409, "passkey-already-registered")
    # The refused account's code is still good (the transaction that would have used it did not commit).
    refused_account = bodies[[answer.status for answer in answers].index(409)]["account_id"]
    assert (await db["accounts"].find_one({"_id": refused_account}))["activation"]["status"] == "open"


async def test_a_body_nested_too_deeply_is_malformed_not_an_error(auth_service, tmp_path):
    """json's decoder recurses once per level: a few hundred kilobytes of brackets (well under the body limit) made
    every JSON endpoint answer 500."""
    phone = await web_phone(auth_service, tmp_path)
    deep = b'{"passkey": {"clientExtensionResults": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}}"
    for path in ("/v1/devices", "/v1/devices/pairings", "/v1/clients"):
        for body in (b"[" * 200_000 + b"]" * 200_000, deep):
            response = await auth_service.client.post(path, data=body, headers={"Content-Type": "application/json"})
            assert response.status == 400, (path, response.status)
            assert (await response.json())["type"].endswith("/malformed-body"), path
    # A depth json can read but the model does not expect is a 422 (pydantic's own recursion guard).
    body, _ = await binding_body(phone, await auth_service.enrolled(tmp_path))
    nested: dict = {}
    for _ in range(500):
        nested = {"a": nested}
    response = await auth_service.client.post("/v1/devices", json={**body, "passkey": {**body["passkey"], "clientExtensionResults": {"x": nested}}})
    assert response.status in (201, 422), response.status


class EdDSAAuthenticator(SoftAuthenticator):
    """An authenticator that answers with an Ed25519 key (COSE alg -8), which the app never asks for."""

    def cose_key(self) -> bytes:
        raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cbor2.dumps({1: 1, 3: -8, -1: 6, -2: raw})


async def test_a_passkey_of_another_algorithm_than_es256_binds_nothing(auth_service, tmp_path):
    """The app asks for ES256 only (pubKeyCredParams alg -7); py_webauthn would take EdDSA, RSA... by default."""
    enrolment = await auth_service.enrolled(tmp_path)
    phone = await web_phone(auth_service, tmp_path)
    phone.authenticator = EdDSAAuthenticator("localhost", origin_of(auth_service))
    body, _ = await binding_body(phone, enrolment)
    detail = (await problem(await auth_service.client.post("/v1/devices", json=body), 400, "invalid-passkey"))["detail"]
    assert "does not verify" in detail
    await nothing_bound(auth_service, enrolment["account_id"])


class FramedAuthenticator(SoftAuthenticator):
    """Used from a frame inside another site's page: the browser says crossOrigin (and topOrigin)."""

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        data = json.loads(super()._client_data(kind, challenge, origin))
        return json.dumps({**data, "crossOrigin": True, "topOrigin": "https://evil.example"}).encode()


async def test_a_passkey_used_from_a_frame_of_another_site_is_refused(auth_service, tmp_path):
    """The app is never framed (frame-ancestors 'none', X-Frame-Options DENY), so a ceremony whose client data says
    crossOrigin is not the app's - at binding and at approval (py_webauthn does not look at crossOrigin)."""
    enrolment = await auth_service.enrolled(tmp_path)
    phone = await web_phone(auth_service, tmp_path)
    framed = FramedAuthenticator("localhost", origin_of(auth_service))
    phone.authenticator = framed
    body, _ = await binding_body(phone, enrolment)
    assert "crossOrigin" in (await problem(await auth_service.client.post("/v1/devices", json=body), 400, "invalid-passkey"))["detail"]
    await nothing_bound(auth_service, enrolment["account_id"])
    # Bound by the app itself, then a framed assertion over the right prompt with the right key.
    genuine = SoftAuthenticator("localhost", origin_of(auth_service))
    genuine.key, genuine.credential_id = framed.key, framed.credential_id
    phone.authenticator = genuine
    await phone.activate_with_passkey(enrolment["account_id"], enrolment["activation_code"])
    rp = await register(auth_service)
    prompt, _, _ = await login_prompt(auth_service, phone, rp)
    assertion = framed.assertion(base64url.decode(prompt["digest"]))
    detail = await refused(phone.decide_with_passkey(prompt["approval_id"], "approve", assertion=assertion),
                           403, "user-verification-required")
    assert "crossOrigin" in detail
    assert (await phone.show(prompt["approval_id"]))["status"] == "pending"
    assert (await phone.decide_with_passkey(prompt["approval_id"], "approve"))["status"] == "approved"


def refusals_counted(reason: str) -> float:
    return REGISTRY.get_sample_value("harbour_passkey_refusals_total", {"reason": reason}) or 0.0


async def test_refused_passkey_approvals_are_counted_for_the_operators(auth_service, tmp_path):
    """Someone trying without the citizen's fingerprint, or a cloned authenticator, shows in the metrics
    (harbour_passkey_refusals_total by reason: docs/operations.md)."""
    phone = await bound_web_phone(auth_service, tmp_path)
    rp = await register(auth_service)
    prompt, _, _ = await login_prompt(auth_service, phone, rp)
    before = {reason: refusals_counted(reason) for reason in ("user-verification-required", "cloned-authenticator")}
    await refused(phone.decide_with_passkey(prompt["approval_id"], "approve", user_verified=False),
                  403, "user-verification-required")
    await refused(phone.decide_with_passkey(prompt["approval_id"], "approve", send_assertion=False),
                  403, "user-verification-required")
    assert (await phone.decide_with_passkey(prompt["approval_id"], "approve"))["status"] == "approved"
    second, _, _ = await login_prompt(auth_service, phone, rp)
    await refused(phone.decide_with_passkey(second["approval_id"], "approve", sign_count=1), 403, "cloned-authenticator")
    assert refusals_counted("user-verification-required") - before["user-verification-required"] == 2
    assert refusals_counted("cloned-authenticator") - before["cloned-authenticator"] == 1

"""Passkeys (WebAuthn, verified by py_webauthn) as the citizen's web app uses them, with a software authenticator:
registered at binding over the proof's nonce, asserted with user verification over each approved prompt's digest
(amr swk/user/mfa); every wrong passkey or assertion refused with nothing bound or decided."""

from __future__ import annotations

from urllib.parse import urlsplit

import jwt
import pytest

from clients.citizen_app import AppError, Profile
from libs import base64url
from libs.approvals import sign_decision
from libs.tokens import public_jwk

from ...support.webauthn_authenticator import PasskeyPhone, SoftAuthenticator
from .oidc_steps import app_link_of, audits, authorization_params, query_of, redeem, register


def origin_of(auth_service) -> str:
    return f"http://localhost:{urlsplit(auth_service.url).port}"


async def web_phone(auth_service, tmp_path, name: str = "web") -> PasskeyPhone:
    phone = PasskeyPhone(Profile(gateway_url=auth_service.url), tmp_path / f"{name}.json")
    phone.passkey_for("localhost", origin_of(auth_service))
    return phone


async def bound_web_phone(auth_service, tmp_path) -> PasskeyPhone:
    enrolment = await auth_service.enrolled(tmp_path)
    phone = await web_phone(auth_service, tmp_path)
    await phone.activate_with_passkey(enrolment["account_id"], enrolment["activation_code"])
    return phone


async def login_prompt(auth_service, phone: PasskeyPhone, rp: dict) -> tuple[dict, str, str]:
    """A login page's link opened on the phone: (the prompt, the code verifier, the page's status path)."""
    params, verifier = authorization_params(rp)
    page = await (await auth_service.client.get("/oidc/authorize", params=params)).text()
    prompt = await phone._as_device("POST", "/v1/approvals/links", json={"link": app_link_of(page)})
    return prompt, verifier, params["state"]


async def refused(call, status: int, slug: str) -> str:
    with pytest.raises(AppError) as refusal:
        await call
    assert refusal.value.status == status and refusal.value.problem["type"].endswith(f"/{slug}"), refusal.value.problem
    return refusal.value.problem.get("detail", "")


async def test_a_device_bound_with_a_passkey_keeps_its_credential(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    device = await auth_service.context.db["devices"].find_one({"_id": phone.profile.device_id})
    assert device["user_verification"] == "passkey" and device["key_storage"] == "software"
    passkey = device["passkey"]
    assert passkey["credential_id"] == base64url.encode(phone.authenticator.credential_id)
    assert passkey["sign_count"] == 0 and passkey["aaguid"] == "00000000-0000-0000-0000-000000000000"
    assert passkey["attestation_format"] == "none" and passkey["public_key"]
    listed = (await phone.devices())["devices"]
    assert [d["user_verification"] for d in listed] == ["passkey"]
    [activated] = await audits(auth_service, phone.profile.account_id, "device.activate")
    assert activated["user_verification"] == "passkey" and activated["passkey_credential_id"] == passkey["credential_id"]


@pytest.mark.parametrize(("wrong", "options"), [
    ("user not verified", {"user_verified": False}),
    ("another origin", {"origin": "http://127.0.0.1:8000"}),
    ("another relying party", {"rp_id": "evil.example"}),
])
async def test_a_passkey_that_does_not_verify_binds_nothing(auth_service, tmp_path, wrong, options):
    enrolment = await auth_service.enrolled(tmp_path)
    phone = await web_phone(auth_service, tmp_path)
    detail = await refused(phone.activate_with_passkey(enrolment["account_id"], enrolment["activation_code"], **options),
                           400, "invalid-passkey")
    assert "does not verify" in detail, wrong
    db = auth_service.context.db
    assert await db["devices"].count_documents({"account_id": enrolment["account_id"]}) == 0
    account = await db["accounts"].find_one({"_id": enrolment["account_id"]})
    assert account["state"] == "pending" and account["activation"]["status"] == "open"
    # The code is still good: a passkey that verifies binds.
    await phone.activate_with_passkey(enrolment["account_id"], enrolment["activation_code"])


async def test_a_passkey_over_another_challenge_or_missing_binds_nothing(auth_service, tmp_path):
    enrolment = await auth_service.enrolled(tmp_path)
    phone = await web_phone(auth_service, tmp_path)
    other = phone.authenticator.register(b"another nonce")
    await refused(phone.activate_with_passkey(enrolment["account_id"], enrolment["activation_code"], registration=other),
                  400, "invalid-passkey")
    # user_verification passkey without a passkey, or a passkey without it: the body is invalid (422).
    key, proof, nonce = await phone.fresh_nonce_and_proof()
    body = {"account_id": enrolment["account_id"], "activation_code": enrolment["activation_code"],
            "public_key": public_jwk(key), "proof": proof, "key_protection": {"user_verification": "passkey"}}
    response = await auth_service.client.post("/v1/devices", json=body)
    assert response.status == 422, await response.text()
    body |= {"key_protection": {"user_verification": "none"}, "passkey": phone.authenticator.register(nonce.encode())}
    assert (await auth_service.client.post("/v1/devices", json=body)).status == 422
    assert await auth_service.context.db["devices"].count_documents({"account_id": enrolment["account_id"]}) == 0


async def test_a_login_approved_with_the_passkey_says_user_and_mfa(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    rp = await register(auth_service)
    prompt, verifier, _ = await login_prompt(auth_service, phone, rp)
    outcome = await phone.decide_with_passkey(prompt["approval_id"], "approve")
    assert outcome["status"] == "approved"
    tokens = await (await redeem(auth_service, rp, query_of(outcome["redirect_to"])["code"], verifier)).json()
    assert jwt.decode(tokens["id_token"], options={"verify_signature": False})["amr"] == ["swk", "user", "mfa"]
    db = auth_service.context.db
    decided = await db["approvals"].find_one({"_id": prompt["approval_id"]})
    # (the device token's unlocking counted before: the decision's assertion is the authenticator's latest)
    count = phone.authenticator.sign_count
    assert decided["factors"] == {"device_key": True, "user_verification": "passkey", "uv_flag": True, "passkey_sign_count": count}
    assert (await db["devices"].find_one({"_id": phone.profile.device_id}))["passkey"]["sign_count"] == count
    [record] = await audits(auth_service, phone.profile.account_id, "approval.decide")
    assert record["uv"] == "passkey" and record["amr"] == ["swk", "user", "mfa"] and record["outcome"] == "approved"


async def test_an_approval_without_user_verification_is_refused_and_the_prompt_stays(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    rp = await register(auth_service)
    prompt, _, _ = await login_prompt(auth_service, phone, rp)
    approval_id = prompt["approval_id"]
    impostor = SoftAuthenticator("localhost", origin_of(auth_service))
    wrong_ways = {
        "no assertion": {"send_assertion": False},
        "UV flag off": {"user_verified": False},
        "another challenge": {"assertion": phone.authenticator.assertion(b"\x00" * 32)},
        "another origin": {"origin": "http://127.0.0.1:8000"},
        "another relying party": {"rp_id": "evil.example"},
        "another credential": {"assertion": impostor.assertion(b"\x00" * 32, credential_id=impostor.credential_id)},
        "another key": {"signing_key": impostor.key},
    }
    details = {}
    await phone.device_token()  # unlocked (a passkey assertion of its own): the count the refusals leave alone
    unlocked_at = phone.authenticator.sign_count
    for wrong, options in wrong_ways.items():
        details[wrong] = await refused(phone.decide_with_passkey(approval_id, "approve", **options),
                                       403, "user-verification-required")
        assert (await phone.show(approval_id))["status"] == "pending", wrong
    assert "needs a passkey assertion" in details["no assertion"] and "another credential" in details["another credential"]
    assert "not verified" in details["UV flag off"]
    device = await auth_service.context.db["devices"].find_one({"_id": phone.profile.device_id})
    assert device["passkey"]["sign_count"] == unlocked_at
    # A denial needs no passkey.
    denied = await phone.decide_with_passkey(approval_id, "deny", send_assertion=False)
    assert denied["status"] == "denied"
    [record] = await audits(auth_service, phone.profile.account_id, "approval.decide")
    assert record["outcome"] == "denied" and record["uv"] == "none" and record["amr"] == ["swk"]


async def test_a_sign_count_that_does_not_grow_is_a_cloned_authenticator(auth_service, tmp_path):
    phone = await bound_web_phone(auth_service, tmp_path)
    rp = await register(auth_service)
    first, _, _ = await login_prompt(auth_service, phone, rp)
    assert (await phone.decide_with_passkey(first["approval_id"], "approve"))["status"] == "approved"  # count 1
    second, _, _ = await login_prompt(auth_service, phone, rp)
    for replayed in (1, 0):
        await refused(phone.decide_with_passkey(second["approval_id"], "approve", sign_count=replayed),
                      403, "cloned-authenticator")
        assert (await phone.show(second["approval_id"]))["status"] == "pending"
    assert (await phone.decide_with_passkey(second["approval_id"], "approve", sign_count=7))["status"] == "approved"
    device = await auth_service.context.db["devices"].find_one({"_id": phone.profile.device_id})
    assert device["passkey"]["sign_count"] == 7


async def test_a_phone_added_by_pairing_brings_its_passkey(auth_service, tmp_path):
    old = await auth_service.citizen(tmp_path, "old")  # the command-line app: no PIN, no passkey
    new = await web_phone(auth_service, tmp_path, "new")
    started = await new.start_pairing_with_passkey()
    await old.approve_pairing(started["code"])
    assert (await new.finish_pairing(timeout_s=10, interval_s=0.05))["status"] == "bound"
    device = await auth_service.context.db["devices"].find_one({"_id": new.profile.device_id})
    assert device["user_verification"] == "passkey"
    assert device["passkey"]["credential_id"] == new.authenticator.register(b"x")["id"]
    rp = await register(auth_service)
    prompt, _, _ = await login_prompt(auth_service, new, rp)
    await refused(new.decide_with_passkey(prompt["approval_id"], "approve", send_assertion=False),
                  403, "user-verification-required")
    assert (await new.decide_with_passkey(prompt["approval_id"], "approve"))["status"] == "approved"
    # The old phone (no passkey) approves as before, with today's amr; it cannot claim a passkey in its decision.
    other, verifier, _ = await login_prompt(auth_service, old, rp)
    claimed = sign_decision(old.profile.device_key(), device_id=old.profile.device_id, approval_id=other["approval_id"],
                            digest=other["digest"], decision="approve", uv="passkey")
    await refused(old._as_device("POST", f"/v1/approvals/{other['approval_id']}/decision", json={"decision": claimed}),
                  403, "user-verification-required")
    outcome = await old.decide(other["approval_id"], "approve", prompt=other)
    tokens = await (await redeem(auth_service, rp, query_of(outcome["redirect_to"])["code"], verifier)).json()
    assert jwt.decode(tokens["id_token"], options={"verify_signature": False})["amr"] == ["swk"]


async def test_a_pairing_whose_passkey_does_not_verify_starts_nothing(auth_service, tmp_path):
    new = await web_phone(auth_service, tmp_path, "new")
    await refused(new.start_pairing_with_passkey(user_verified=False), 400, "invalid-passkey")
    assert await auth_service.context.db["device_pairings"].count_documents({}) == 0

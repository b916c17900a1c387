"""Honest authentication claims (issue 18): the ID token's `amr` says what really happened on the phone.

The reference app keeps its device key in software, sealed under the citizen's PIN (or, without one, in the
clear); it tells auth which at activation or pairing, and says in each signed decision whether it asked for the
PIN. Through the gateway against the whole stack: a login approved with the PIN gives ["swk", "pin"] (the ID
token verified against the provider's keys), one from a device without a PIN ["swk"], and a decision claiming
the PIN from a device registered without one gets no "pin". Never "hwk": a hardware key cannot be registered.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken

from clients.citizen_app import CitizenApp, Profile
from clients.citizen_app.profile import WrongPin
from libs.approvals import ApprovalRequest, sign_decision
from libs.tokens import generate_private_key, public_jwk, sign

from ..support.database import mongo
from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, login, register, token_request
from ..support.people import identity, selfie

pytestmark = pytest.mark.e2e
PIN = "271828"


def verified_claims(metadata, tokens: dict, rp: dict, nonce: str) -> dict:
    """The ID token's claims, its signature checked with the provider's published keys (and iss, aud, nonce, at_hash)."""
    jwks = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    claims = JsonWebToken(["ES256"]).decode(
        tokens["id_token"], jwks, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "values": [metadata["issuer"]]}},
        claims_params={"nonce": nonce, "client_id": rp["client_id"], "access_token": tokens["access_token"]})
    claims.validate()
    return dict(claims)


async def enrolled(platform, kiosk, tmp_path, name: str, pin: str | None) -> CitizenApp:
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(identity(), selfie(), kiosk=kiosk)
    app = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / f"{name}.json")
    await app.activate(enrolment["account_id"], enrolment["activation_code"], name, pin=pin)
    return app


async def login_checked(platform, metadata, rp, app) -> dict:
    nonce = "n-" + app.profile.device_id[-12:]
    tokens, _ = await login(platform, metadata, rp, app, nonce=nonce)
    return verified_claims(metadata, tokens, rp, nonce)


async def audited_amr(platform, approval_id: str) -> list[str]:
    """The `amr` of the decision's audit record (auth's outbox keeps sent events a week)."""
    async with mongo(platform.infra.mongo_uri) as client:
        docs = await client[platform.database("auth")]["outbox"].find({"topic": "audit.events"}).to_list()
    [record] = [e["data"] for e in map(json.loads, (d["value"] for d in docs))
                if e["data"]["action"] == "approval.decide" and e["data"].get("approval_id") == approval_id]
    return record["amr"]


async def test_a_login_approved_with_the_pin_says_so_and_one_without_does_not(platform, kiosk, metadata, tmp_path):
    rp = register(platform, client_name="Honest Portal", scope="openid")
    asked: list[str] = []
    with_pin = await enrolled(platform, kiosk, tmp_path, "pin phone", PIN)
    with_pin.pin = lambda: asked.append("PIN") or PIN  # the citizen types it each time the key must sign
    assert "PRIVATE KEY" not in (tmp_path / "pin phone.json").read_text()
    without = await enrolled(platform, kiosk, tmp_path, "plain phone", None)

    claims = await login_checked(platform, metadata, rp, with_pin)
    assert claims["amr"] == ["swk", "pin"] and claims["acr"] == "urn:harbour-id:loa:plus"
    assert asked  # the PIN was asked for this approval
    assert (await login_checked(platform, metadata, rp, without))["amr"] == ["swk"]

    # The devices say what protects their keys, as registered.
    listed = {d["device_id"]: d for d in (await with_pin.devices())["devices"]}
    assert listed[with_pin.profile.device_id]["user_verification"] == "pin"
    assert listed[with_pin.profile.device_id]["key_storage"] == "software"
    [plain] = (await without.devices())["devices"]
    assert (plain["key_storage"], plain["user_verification"]) == ("software", "none")

    # A wrong PIN opens nothing: the app cannot sign, so nothing reaches the platform.
    url, _ = authorize_url(metadata, rp["client_id"])
    link = app_link_of(requests.get(url, timeout=10).text)
    wrong = CitizenApp(with_pin.profile, pin="000000")
    with pytest.raises(WrongPin):
        await wrong.open_link(link)


async def test_a_pin_claimed_by_a_device_registered_without_one_is_not_believed(platform, kiosk, metadata, tmp_path):
    rp = register(platform, client_name="Sceptical Portal", scope="openid")
    without = await enrolled(platform, kiosk, tmp_path, "plain phone", None)
    url, verifier = authorize_url(metadata, rp["client_id"], nonce="forged-uv")
    prompt = await without._as_device("POST", "/v1/approvals/links",
                                      json={"link": app_link_of(requests.get(url, timeout=10).text)})
    digest = ApprovalRequest.model_validate(prompt["request"]).digest()
    forged = sign_decision(without.profile.device_key(), device_id=without.profile.device_id,
                           approval_id=prompt["approval_id"], digest=digest, decision="approve", uv="pin")
    outcome = await without._as_device("POST", f"/v1/approvals/{prompt['approval_id']}/decision", json={"decision": forged})
    code = re.search(r"[?&]code=([^&]+)", outcome["redirect_to"]).group(1)
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                           code_verifier=verifier).json()
    assert verified_claims(metadata, tokens, rp, "forged-uv")["amr"] == ["swk"]
    assert await audited_amr(platform, prompt["approval_id"]) == ["swk"]


async def test_ciba_silent_login_and_refresh_keep_what_the_approval_proved(platform, kiosk, metadata, tmp_path):
    with_pin = await enrolled(platform, kiosk, tmp_path, "pin phone", PIN)
    rp = register(platform, client_name="Tax Hotline", scope="openid offline_access")
    first, _ = await login(platform, metadata, rp, with_pin, scope="openid offline_access", prompt="consent")
    assert claims_of(first["id_token"])["amr"] == ["swk", "pin"]
    refreshed = token_request(metadata, rp, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert claims_of(refreshed["id_token"])["amr"] == ["swk", "pin"]

    # CIBA: the same prompt and decision path.
    auth = (rp["client_id"], rp["client_secret"])
    started = requests.post(metadata["backchannel_authentication_endpoint"], auth=auth, timeout=10, data={
        "scope": "openid", "login_hint": claims_of(first["id_token"])["sub"], "binding_message": "Call 1618"})
    assert started.status_code == 200, started.text
    [prompt] = [p for p in await with_pin.pending() if p["details"].get("binding_message") == "Call 1618"]
    await with_pin.approve(prompt["approval_id"])
    answer = requests.post(metadata["token_endpoint"], auth=auth, timeout=10,
                           data={"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": started.json()["auth_req_id"]})
    assert answer.status_code == 200, answer.text
    assert claims_of(answer.json()["id_token"])["amr"] == ["swk", "pin"]

    # prompt=none answers from the browser's session: the amr of the approval that opened it.
    browser = requests.Session()
    url, verifier = authorize_url(metadata, rp["client_id"])
    page = browser.get(url, timeout=10).text
    outcome = await with_pin.open_link(app_link_of(page))
    status_url = re.search(r'"statusUrl":\s*"([^"]+)"', page).group(1)
    done = browser.get(browser.get(status_url, timeout=10).json()["redirect_to"], allow_redirects=False, timeout=10)
    assert done.status_code == 303 and outcome["status"] == "approved"
    silent_url, silent_verifier = authorize_url(metadata, rp["client_id"], prompt="none")
    silent = browser.get(silent_url, allow_redirects=False, timeout=10)
    code = re.search(r"[?&]code=([^&]+)", silent.headers["Location"]).group(1)
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                           code_verifier=silent_verifier).json()
    assert claims_of(tokens["id_token"])["amr"] == ["swk", "pin"]


async def test_a_hardware_key_cannot_be_registered_and_a_paired_phone_declares_its_pin(platform, kiosk, metadata, tmp_path):
    # No hardware attestation is supported: claiming a hardware key is refused, nothing is bound.
    key = generate_private_key()
    challenge = requests.post(platform.gateway + "/v1/devices/challenges", json={}, timeout=10).json()
    proof = sign({"nonce": challenge["nonce"], "aud": challenge["audience"], "iat": 1, "exp": 4102444800}, key)
    refused = requests.post(platform.gateway + "/v1/devices/pairings", timeout=10, json={
        "public_key": public_jwk(key), "device_name": "secure phone", "proof": proof,
        "key_protection": {"storage": "hardware", "user_verification": "pin"}})
    assert refused.status_code == 422 and refused.headers["Content-Type"].startswith("application/problem+json")
    assert "key_protection" in refused.text

    old = await enrolled(platform, kiosk, tmp_path, "old phone", None)
    new = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json")
    started = await new.start_pairing("new phone", pin=PIN)
    assert (await old.approve_pairing(started["code"], key_thumbprint=started["key_thumbprint"]))["status"] == "approved"
    assert (await new.finish_pairing(timeout_s=10))["status"] == "bound"
    listed = {d["device_id"]: d["user_verification"] for d in (await old.devices())["devices"]}
    assert listed == {old.profile.device_id: "none", new.profile.device_id: "pin"}
    rp = register(platform, client_name="Paired Portal", scope="openid")
    assert claims_of((await login(platform, metadata, rp, new))[0]["id_token"])["amr"] == ["swk", "pin"]
    assert claims_of((await login(platform, metadata, rp, old))[0]["id_token"])["amr"] == ["swk"]

"""Passkeys through the gateway on the whole stack (issue 21): a phone bound with a passkey (a software WebAuthn
authenticator, as the web app's browser would answer) logs in with user verification and its ID token says
amr ["swk", "user", "mfa"]; an approval without user verification, over another challenge, from another origin or
with a sign count that does not grow is refused 403 and the prompt stays pending; a denial needs no passkey. And the
web app itself: served by auth under /app/ at its one origin (localhost: WebAuthn refuses the issuer's IP), with its
strict headers and its config.json.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from clients.citizen_app import AppError, CitizenApp, Profile

from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, register, token_request
from ..support.people import identity, selfie
from ..support.webauthn_authenticator import PasskeyPhone

pytestmark = pytest.mark.e2e


def app_origin(platform) -> str:
    return platform.gateway.replace("://127.0.0.1:", "://localhost:")


async def web_phone(platform, kiosk, tmp_path) -> PasskeyPhone:
    """A citizen enrolled at the kiosk, bound with a passkey for the relying party GET /app/config.json names."""
    config = requests.get(app_origin(platform) + "/app/config.json", timeout=10).json()
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(identity(), selfie(), kiosk=kiosk)
    phone = PasskeyPhone(Profile(gateway_url=platform.gateway), tmp_path / "web.json")
    phone.passkey_for(config["rp_id"], config["origin"])
    await phone.activate_with_passkey(enrolment["account_id"], enrolment["activation_code"])
    return phone


async def login_prompt(metadata, rp, phone) -> tuple[dict, str]:
    url, verifier = authorize_url(metadata, rp["client_id"])
    prompt = await phone._as_device("POST", "/v1/approvals/links", json={"link": app_link_of(requests.get(url, timeout=10).text)})
    return prompt, verifier


async def refused(call, status: int, slug: str) -> None:
    with pytest.raises(AppError) as refusal:
        await call
    assert refusal.value.status == status and refusal.value.problem["type"].endswith(f"/{slug}"), refusal.value.problem


def test_the_web_app_is_served_at_its_one_origin_with_strict_headers(platform, metadata):
    moved = requests.get(platform.gateway + "/app/authorize?tx=abc&t=3", timeout=10, allow_redirects=False)
    assert moved.status_code == 308 and moved.headers["Location"] == app_origin(platform) + "/app/authorize?tx=abc&t=3"
    page = requests.get(moved.headers["Location"], timeout=10, allow_redirects=False)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'; script-src 'self'; style-src 'self';") and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'none'" in csp and "base-uri 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "publickey-credentials-create=(self)" in page.headers["Permissions-Policy"]
    assert page.headers["Cache-Control"] == "no-cache"
    again = requests.get(moved.headers["Location"], headers={"If-None-Match": page.headers["ETag"]}, timeout=10)
    assert again.status_code == 304
    worker = requests.get(app_origin(platform) + "/app/sw.js", timeout=10)
    assert worker.status_code == 200 and worker.headers["Cache-Control"] == "no-store"
    assert requests.get(app_origin(platform) + "/app/no-such-file.js", timeout=10).status_code == 404
    config = requests.get(app_origin(platform) + "/app/config.json", timeout=10)
    assert config.status_code == 200 and config.headers["Content-Security-Policy"] == csp
    port = urlsplit(platform.gateway).port
    assert config.json() == {"issuer": metadata["issuer"], "rp_id": "localhost", "origin": f"http://localhost:{port}",
                             "languages": ["en", "zh-HK", "zh-CN"]}


async def test_a_login_approved_with_the_passkey_says_user_and_mfa(platform, kiosk, metadata, tmp_path):
    phone = await web_phone(platform, kiosk, tmp_path)
    [device] = (await phone.devices())["devices"]
    assert device["user_verification"] == "passkey"
    rp = register(platform, client_name="Passkey Portal", scope="openid")
    prompt, verifier = await login_prompt(metadata, rp, phone)
    outcome = await phone.decide_with_passkey(prompt["approval_id"], "approve")
    code = urlsplit(outcome["redirect_to"]).query.split("code=")[1].split("&")[0]
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                           code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    assert claims_of(tokens.json()["id_token"])["amr"] == ["swk", "user", "mfa"]


async def test_an_approval_without_user_verification_is_refused_and_the_prompt_stays(platform, kiosk, metadata, tmp_path):
    phone = await web_phone(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Careful Portal", scope="openid")
    first, _ = await login_prompt(metadata, rp, phone)
    approval_id = first["approval_id"]
    for options in ({"send_assertion": False}, {"user_verified": False},
                    {"assertion": phone.authenticator.assertion(b"\x07" * 32)},  # another challenge
                    {"origin": "http://127.0.0.1:8000"}):
        await refused(phone.decide_with_passkey(approval_id, "approve", **options), 403, "user-verification-required")
        assert (await phone.show(approval_id))["status"] == "pending", options
    assert (await phone.decide_with_passkey(approval_id, "approve"))["status"] == "approved"
    # The next approval with a sign count that did not grow: a cloned authenticator.
    second, _ = await login_prompt(metadata, rp, phone)
    await refused(phone.decide_with_passkey(second["approval_id"], "approve", sign_count=phone.authenticator.sign_count),
                  403, "cloned-authenticator")
    assert (await phone.show(second["approval_id"]))["status"] == "pending"
    # A denial needs no passkey.
    assert (await phone.decide_with_passkey(second["approval_id"], "deny", send_assertion=False))["status"] == "denied"

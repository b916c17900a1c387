"""What a login may give a client, and for how long: silent sign-on, offline access, login transactions, CIBA text.

Each test drives the real services through the gateway with the reference
phone app, and reads auth's database where the claim is about what is stored.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import bson
import pytest
import requests

from clients.citizen_app import AppError

from ..support.calls import refused_with
from ..support.citizens import basic_citizen, enrolled_app
from ..support.database import mongo
from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, login, status_url_of, token_request
from ..support.operator import admin
from ..support.polling import eventually

pytestmark = pytest.mark.e2e

ACR_PLUS = "urn:harbour-id:loa:plus"


def operator_client(platform, name: str, scope: str) -> dict:
    """A relying party registered by an operator (scopes beyond what the sandbox may grant itself)."""
    token = platform.env()["HARBOUR_ADMIN_TOKEN"]
    response = requests.post(platform.gateway + "/v1/clients", json={"client_name": name, "redirect_uris": [REDIRECT], "scope": scope},
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


async def browser_login(browser: requests.Session, metadata, citizen, client: dict, scope: str) -> tuple[str, str]:
    """An interactive login in `browser`, approved on the phone: (the redirect it ends with, the PKCE verifier)."""
    url, verifier = authorize_url(metadata, client["client_id"], scope=scope)
    page = browser.get(url, timeout=10)
    assert page.status_code == 200 and "harbourid://authorize" in page.text, page.text
    await citizen.open_link(app_link_of(page.text))
    status = browser.get(status_url_of(page.text), timeout=10).json()
    assert status["status"] == "approved", status
    done = browser.get(status["redirect_to"], allow_redirects=False, timeout=10)
    assert done.status_code == 303, done.text
    return done.headers["Location"], verifier


def silent(browser: requests.Session, metadata, client: dict, scope: str) -> tuple[dict[str, str], str]:
    """prompt=none from this browser: (the parameters the client gets back, the PKCE verifier)."""
    url, verifier = authorize_url(metadata, client["client_id"], scope=scope, prompt="none")
    response = browser.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}, verifier


def code_of(location: str) -> str:
    return re.search(r"[?&]code=([^&]+)", location).group(1)


async def auth_db(platform, work):
    async with mongo(platform.infra.mongo_uri) as client:
        return await work(client[platform.database("auth")])


# --- issue 14 item 2: silent sign-on only where, and for what, the citizen approved --------------------------------


async def test_prompt_none_repeats_only_what_the_citizen_approved_in_this_session(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    portal_a = operator_client(platform, "Portal A", "openid offline_access sign notify")
    portal_b = operator_client(platform, "Portal B", "openid offline_access sign formfill")
    browser = requests.Session()
    location, verifier = await browser_login(browser, metadata, citizen, portal_a, "openid sign")
    tokens = token_request(metadata, portal_a, grant_type="authorization_code", code=code_of(location), redirect_uri=REDIRECT,
                           code_verifier=verifier).json()

    # Client B was never approved: the browser's session must not sign the citizen in there.
    answer, _ = silent(browser, metadata, portal_b, "openid sign formfill")
    assert answer["error"] == "consent_required" and "code" not in answer
    assert answer["iss"] == platform.gateway and answer["state"]
    # Client A, but a scope the phone never showed: the same.
    answer, _ = silent(browser, metadata, portal_a, "openid sign notify")
    assert answer["error"] == "consent_required" and "code" not in answer
    # Offline access is never granted silently (a refresh token needs the citizen's consent every time).
    answer, _ = silent(browser, metadata, portal_a, "openid sign offline_access")
    assert answer["error"] == "consent_required" and "code" not in answer
    # What was approved, or less of it, at A: a code at once.
    for scope in ("openid sign", "openid"):
        answer, verifier = silent(browser, metadata, portal_a, scope)
        assert "error" not in answer and answer["code"]
        issued = token_request(metadata, portal_a, grant_type="authorization_code", code=answer["code"], redirect_uri=REDIRECT,
                               code_verifier=verifier)
        assert issued.status_code == 200 and issued.json()["scope"] == scope and "refresh_token" not in issued.json()
    # max_age still applies: an approval older than max_age (auth_time is whole seconds, so 0 is exceeded) needs the phone.
    url, _ = authorize_url(metadata, portal_a["client_id"], scope="openid", prompt="none", max_age="0")
    too_old = browser.get(url, allow_redirects=False, timeout=10)
    assert "error=login_required" in too_old.headers["Location"]

    # Without prompt=none, B gets the normal login page: a new approval on the phone.
    url, _ = authorize_url(metadata, portal_b["client_id"], scope="openid sign")
    page = browser.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "harbourid://authorize" in page.text

    # The cookie is a secret of its own: not the sid an ID token shows the client, and stored only as a hash.
    cookie = browser.cookies.get("harbour_sid")
    sid = claims_of(tokens["id_token"])["sid"]
    assert cookie and cookie != sid

    async def stored(db):
        return await db.sessions.find_one({"_id": sid})

    session_doc = await auth_db(platform, stored)
    assert cookie not in bson.encode(session_doc).decode("latin-1")
    assert session_doc["approved"] == [{"client_id": portal_a["client_id"], "scopes": ["openid", "sign"]}]


# --- issue 14 item 5: refresh tokens only with offline access, and only while the account is active ------------------


async def test_refresh_tokens_need_offline_access_and_an_active_account(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    portal = operator_client(platform, "Portal", "openid offline_access sign")
    without, _ = await login(platform, metadata, portal, citizen, scope="openid sign")
    assert "refresh_token" not in without and without["scope"] == "openid sign"
    # A client not registered for offline_access cannot ask for it.
    online_only = operator_client(platform, "Online only", "openid")
    url, _ = authorize_url(metadata, online_only["client_id"], scope="openid offline_access")
    refused = requests.get(url, allow_redirects=False, timeout=10)
    assert refused.status_code == 303 and "error=invalid_scope" in refused.headers["Location"]

    tokens, _ = await login(platform, metadata, portal, citizen, scope="openid sign offline_access")
    first = tokens["refresh_token"]
    # A wider scope than granted is refused, and does not burn the token.
    wider = token_request(metadata, portal, grant_type="refresh_token", refresh_token=first, scope="openid sign notify")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    # A narrower one narrows the access token only: the next refresh token keeps what the citizen granted (RFC 6749 §6).
    narrowed = token_request(metadata, portal, grant_type="refresh_token", refresh_token=first, scope="openid")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "openid"
    full = token_request(metadata, portal, grant_type="refresh_token", refresh_token=narrowed.json()["refresh_token"])
    assert full.status_code == 200 and set(full.json()["scope"].split()) == {"openid", "sign", "offline_access"}
    current = full.json()["refresh_token"]

    # The account is suspended: the refresh grant refuses, and the login's tokens are revoked for good.
    suspended = admin(platform, "set-state", citizen.profile.account_id, "suspended", "--reason", "reported lost")
    assert suspended.returncode == 0, suspended.stderr
    after = token_request(metadata, portal, grant_type="refresh_token", refresh_token=current)
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    assert admin(platform, "set-state", citizen.profile.account_id, "active", "--reason", "found again").returncode == 0
    again = token_request(metadata, portal, grant_type="refresh_token", refresh_token=current)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


# --- issue 14 item 8: login transactions opened by anonymous GETs are bounded --------------------------------------


async def test_authorization_transactions_are_stored_only_when_valid_and_go_when_they_expire(platform, metadata):
    portal = operator_client(platform, "Portal", "openid")

    async def transactions(db):
        return await db.authorizations.find({"client_id": portal["client_id"]}).to_list()

    # Each refused as OAuth says: back to the client with its error, or (an unregistered redirect_uri) a 400 page.
    invalid = [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"scope": "openid sign"}, "invalid_scope"),
        ({"scope": "openid offline_access"}, "invalid_scope"),
        ({"prompt": "select_account"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"redirect_uri": "https://evil.example/callback"}, None),
        ({"max_age": "soon"}, "invalid_request"),
    ]
    for overrides, error in invalid:
        url, _ = authorize_url(metadata, portal["client_id"], **overrides)
        response = requests.get(url, allow_redirects=False, timeout=10)
        if error is None:
            assert response.status_code == 400 and "Location" not in response.headers, (overrides, response.status_code)
            assert "redirect_uri" in response.text
        else:
            assert response.status_code == 303, (overrides, response.status_code)
            location = response.headers["Location"]
            assert location.startswith(REDIRECT + "?") and f"error={error}" in location, (overrides, location)
        assert "harbourid://authorize" not in response.text
    assert await auth_db(platform, transactions) == []

    url, _ = authorize_url(metadata, portal["client_id"])
    assert requests.get(url, timeout=10).status_code == 200
    [stored] = await auth_db(platform, transactions)
    # Removed by the database at the login's own expiry (a TTL index on purge_at), not an hour later.
    assert stored["purge_at"] == stored["expires_at"] <= stored["created_at"] + timedelta(minutes=5, seconds=1)

    async def ttl(db):
        return {i["name"]: i for i in await (await db.authorizations.list_indexes()).to_list()}

    indexes = await auth_db(platform, ttl)
    assert any(i["key"] == {"purge_at": 1} and i.get("expireAfterSeconds") == 0 for i in indexes.values())


# --- issue 14 item 14: a refused claim does not take the login away from the citizen who can approve it -----------


async def test_a_refused_claim_leaves_the_login_to_the_right_citizen(platform, kiosk, metadata, tmp_path):
    plus = await enrolled_app(platform, kiosk, tmp_path)  # kiosk-enrolled: plus
    basic = await basic_citizen(platform, tmp_path)
    portal = operator_client(platform, "Plus portal", "openid")
    url, _ = authorize_url(metadata, portal["client_id"], acr_values=ACR_PLUS)
    link = app_link_of(requests.get(url, timeout=10).text)
    with pytest.raises(AppError) as refused:
        await basic.open_link(link)
    refused_with(refused.value, 403, "assurance-too-low")
    assert await basic.pending() == []
    # The same login is still there for a citizen who meets plus.
    outcome = await plus.open_link(link)
    assert "code=" in outcome["redirect_to"]


# --- issue 14 item 15: a CIBA binding message is sealed at rest and shown on the phone ------------------------------


async def test_ciba_binding_message_is_encrypted_at_rest_and_shown_on_the_phone(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    hotline = operator_client(platform, "Tax Hotline", "openid")
    sub = claims_of((await login(platform, metadata, hotline, citizen))[0]["id_token"])["sub"]
    message = "Call ref QX-4821-ZT"
    started = requests.post(metadata["backchannel_authentication_endpoint"],
                            data={"scope": "openid", "login_hint": sub, "binding_message": message},
                            auth=(hotline["client_id"], hotline["client_secret"]), timeout=10)
    assert started.status_code == 200, started.text
    request_id = started.json()["auth_req_id"]
    [prompt] = [p for p in await citizen.pending() if p["approval_id"] == f"login-{request_id}"]
    assert prompt["details"]["binding_message"] == message
    assert prompt["request"]["details"]["binding_message"] == message
    # The citizen is not in the app (the hotline asked from elsewhere): notify's "approve on your phone" message reaches
    # the phone, naming the client and the kind of action only — the binding message stays sealed to auth.
    async def called_to_the_phone():
        return [m for m in await citizen.inbox() if m["subject"] == "請在手機上批准：Tax Hotline"]  # the citizen reads zh-HK

    [called] = await eventually(called_to_the_phone, timeout_s=20)
    assert called["priority"] == "high" and called["from"] == "Harbour ID" and called["body"].startswith("Tax Hotline")
    assert "QX-4821" not in called["subject"] + called["body"]

    async def stored(db):
        return [await db.approvals.find_one({"_id": f"login-{request_id}"}), await db.authorizations.find_one({"_id": request_id})]

    approval_doc, transaction_doc = await auth_db(platform, stored)
    assert approval_doc["sealed"] and transaction_doc
    for doc in (approval_doc, transaction_doc):
        raw = bson.encode(doc)
        assert message.encode() not in raw and b"QX-4821" not in raw
    # The phone signs what it showed (the digest covers the opened text), and the decision is accepted.
    decided = await citizen.approve(prompt["approval_id"])
    assert decided["status"] == "approved"


async def test_a_hinted_login_the_client_pushed_calls_the_citizen_to_the_phone(platform, kiosk, metadata, tmp_path):
    # The client named its citizen and pushed the request (PAR): the page says the request was sent to the app, and
    # with the app closed only notify's message makes that true. The citizen approves from the prompt list, with no
    # QR code, and the page's login completes.
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    portal = operator_client(platform, "Housing Portal", "openid")
    sub = claims_of((await login(platform, metadata, portal, citizen))[0]["id_token"])["sub"]
    url, verifier = authorize_url(metadata, portal["client_id"], login_hint=sub)
    pushed = requests.post(metadata["pushed_authorization_request_endpoint"], data=parse_qs(urlsplit(url).query),
                           auth=(portal["client_id"], portal["client_secret"]), timeout=10)
    assert pushed.status_code == 201, pushed.text
    browser = requests.Session()
    page = browser.get(metadata["authorization_endpoint"], params={"client_id": portal["client_id"],
                                                                   "request_uri": pushed.json()["request_uri"]}, timeout=10)
    assert page.status_code == 200 and 'id="sent-to-phone"' in page.text
    tx = app_link_of(page.text).split("tx=")[1]

    async def called_to_the_phone():
        return [m for m in await citizen.inbox() if m["subject"] == "請在手機上批准：Housing Portal"]

    [called] = await eventually(called_to_the_phone, timeout_s=20)
    assert called["priority"] == "high"
    [prompt] = [p for p in await citizen.pending() if p["approval_id"] == f"login-{tx}"]
    assert (await citizen.approve(prompt["approval_id"]))["status"] == "approved"
    status = browser.get(status_url_of(page.text), timeout=10).json()
    assert status["status"] == "approved", status
    done = browser.get(status["redirect_to"], allow_redirects=False, timeout=10)
    tokens = token_request(metadata, portal, grant_type="authorization_code", code=code_of(done.headers["Location"]),
                           redirect_uri=REDIRECT, code_verifier=verifier)
    assert tokens.status_code == 200 and claims_of(tokens.json()["id_token"])["sub"] == sub

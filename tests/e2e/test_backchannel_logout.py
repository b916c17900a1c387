"""OpenID Connect Back-Channel Logout 1.0 through the whole stack: relying parties' receivers are told by logout tokens.

Each relying party's receiver is a small aiohttp server on 127.0.0.1 (its own thread and event loop, so it answers
while the test waits on the platform); it verifies every logout token with jwcrypto against the JWKS published at
discovery's jwks_uri and checks the claims as Back-Channel Logout §2.4 and §2.6 require.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests
from aiohttp import web
from jwcrypto import jwk, jwt as jwcrypto_jwt

from clients.citizen_app import CitizenApp, Profile

from ..support.calls import refusal
from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, login, register, status_url_of, token_request
from ..support.operator import admin
from ..support.people import identity, selfie
from ..support.polling import eventually

pytestmark = pytest.mark.e2e

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Received:
    path: str
    content_type: str
    token: str


@dataclass
class Receiver:
    """Relying parties' back-channel logout endpoints: every POST is recorded; a path answers its queued statuses first."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in list(self.received) if r.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.received.append(Received(request.match_info["path"], request.content_type, str(form.get("logout_token", ""))))
        queued = self.answers.get(request.match_info["path"])
        return web.Response(status=queued.pop(0) if queued else 200)


@pytest.fixture(scope="module")
def receiver():
    rp = Receiver()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    app = web.Application()
    app.router.add_post("/{path}", rp.handle)
    runner = web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        rp.port = site._server.sockets[0].getsockname()[1]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10)
    yield rp
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def verified(metadata, token: str, client_id: str) -> dict:
    """The logout token's claims once jwcrypto verified it against the published keys, checked per §2.4 / §2.6."""
    keys = jwk.JWKSet.from_json(requests.get(metadata["jwks_uri"], timeout=10).text)
    checked = jwcrypto_jwt.JWT(jwt=token, key=keys, algs=["ES256"],
                               check_claims={"iss": metadata["issuer"], "aud": client_id, "iat": None, "exp": None, "jti": None})
    header = checked.token.jose_header
    assert header["typ"] == "logout+jwt" and header["alg"] == "ES256" and header["kid"]
    claims = json.loads(checked.claims)
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in claims
    assert claims.get("sub") or claims.get("sid")
    assert abs(claims["iat"] - time.time()) < 60 and 0 < claims["exp"] - claims["iat"] <= 300
    return claims


async def browser_login(metadata, rp: dict, citizen) -> tuple[requests.Session, dict]:
    """A browser login approved on the phone: the browser holds the session cookie; the token response."""
    browser = requests.Session()
    url, verifier = authorize_url(metadata, rp["client_id"])
    page = browser.get(url, timeout=10).text
    await citizen.open_link(app_link_of(page))
    done = browser.get(browser.get(status_url_of(page), timeout=10).json()["redirect_to"], allow_redirects=False, timeout=10)
    code = done.headers["Location"].split("code=")[1].split("&")[0]
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    return browser, tokens.json()


async def queued_for(platform, client_id: str) -> list[dict]:
    async with mongo(platform.infra.mongo_uri) as client:
        return await client[platform.database("auth")]["backchannel_logouts"].find({"client_id": client_id}).to_list()


def test_discovery_and_registration(platform, metadata, receiver):
    assert metadata["backchannel_logout_supported"] is True and metadata["backchannel_logout_session_supported"] is True
    rp = register(platform, backchannel_logout_uri=receiver.url("registered"), backchannel_logout_session_required=True)
    assert rp["backchannel_logout_uri"] == receiver.url("registered") and rp["backchannel_logout_session_required"] is True
    uri, required = "backchannel_logout_uri", "backchannel_logout_session_required"
    for bad, field_named in (({uri: "http://rp.example/logout"}, uri),          # http off loopback
                             ({uri: "https://10.1.2.3/logout"}, uri),          # a private address
                             ({uri: "https://rp.example/logout#frag"}, uri),   # a fragment (§2.2)
                             ({uri: "https://intranet/logout"}, uri),          # not a public name
                             ({uri: "logout"}, uri),
                             ({uri: ["https://rp.example/logout"]}, uri),
                             ({required: True}, "(body)"),                     # without a URI
                             ({required: "yes"}, required)):
        answer = requests.post(platform.gateway + "/v1/clients", timeout=10, json={
            "client_name": "Bad RP", "redirect_uris": [REDIRECT], "scope": "openid", **bad})
        errors = refusal(answer, 422, "validation-failed")["errors"]
        assert {e["field"] for e in errors} == {field_named}, (bad, errors)


async def test_rp_initiated_logout_sends_a_verified_logout_token(platform, kiosk, metadata, receiver, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Logout RP", backchannel_logout_uri=receiver.url("logout-rp"), scope="openid")
    browser, tokens = await browser_login(metadata, rp, citizen)
    id_token = claims_of(tokens["id_token"])
    assert id_token["sid"]

    out = browser.get(metadata["end_session_endpoint"], params={"id_token_hint": tokens["id_token"]}, allow_redirects=False, timeout=10)
    assert out.status_code == 200
    [delivery] = await eventually(lambda: receiver.at("logout-rp"), timeout_s=20)
    assert delivery.content_type == "application/x-www-form-urlencoded"
    claims = verified(metadata, delivery.token, rp["client_id"])
    assert claims["sub"] == id_token["sub"] and claims["sid"] == id_token["sid"]
    # Logging out again (the session is gone) tells nobody twice; the RP without a URI was never queued anything.
    browser.get(metadata["end_session_endpoint"], params={"id_token_hint": tokens["id_token"]}, allow_redirects=False, timeout=10)
    assert [d["state"] for d in await queued_for(platform, rp["client_id"])] == ["delivered"]


async def test_device_revocation_tells_every_rp_with_a_session_or_grant_and_none_without_a_uri(platform, kiosk, metadata, receiver, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    first = register(platform, client_name="First RP", backchannel_logout_uri=receiver.url("revoke-first"))
    second = register(platform, client_name="Second RP", backchannel_logout_uri=receiver.url("revoke-second"))
    _, by_browser = await browser_login(metadata, first, citizen)  # a session at the issuer
    with_grant, _ = await login(platform, metadata, second, citizen, scope="openid offline_access")  # a refresh-token grant (offline_access)
    assert with_grant["refresh_token"]
    silent_rp = register(platform, client_name="No back-channel RP")  # a grant too, but no backchannel_logout_uri
    await login(platform, metadata, silent_rp, citizen, scope="openid offline_access")

    await citizen.revoke(citizen.profile.device_id)
    for rp, tokens, path in ((first, by_browser, "revoke-first"), (second, with_grant, "revoke-second")):
        [delivery] = await eventually(lambda path=path: receiver.at(path), timeout_s=20)
        claims = verified(metadata, delivery.token, rp["client_id"])
        id_token = claims_of(tokens["id_token"])
        assert claims["sub"] == id_token["sub"] and claims["sid"] == id_token["sid"]
    # Pairwise: each relying party hears of the citizen under its own sub only.
    assert claims_of(by_browser["id_token"])["sub"] != claims_of(with_grant["id_token"])["sub"]
    # The relying party without a URI is sent nothing (nothing is even queued for it, in the revocation's transaction).
    assert await queued_for(platform, silent_rp["client_id"]) == []
    assert len(await queued_for(platform, first["client_id"])) == len(await queued_for(platform, second["client_id"])) == 1


async def test_operator_suspension_tells_every_rp_and_a_refused_first_delivery_is_retried(platform, kiosk, metadata, receiver, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    flaky = register(platform, client_name="Flaky RP", backchannel_logout_uri=receiver.url("suspend-flaky"))
    steady = register(platform, client_name="Steady RP", backchannel_logout_uri=receiver.url("suspend-steady"))
    receiver.answers["suspend-flaky"] = [503]
    tokens = {rp["client_id"]: (await login(platform, metadata, rp, citizen, scope="openid offline_access"))[0] for rp in (flaky, steady)}
    account_id = citizen.profile.account_id

    suspended = admin(platform, "set-state", account_id, "suspended", "--reason", "reported stolen")
    assert suspended.returncode == 0, suspended.stderr
    [steady_delivery] = await eventually(lambda: receiver.at("suspend-steady"), timeout_s=20)
    first, second = await eventually(lambda: len(receiver.at("suspend-flaky")) >= 2 and receiver.at("suspend-flaky"), timeout_s=30)
    for rp, delivery in ((steady, steady_delivery), (flaky, first), (flaky, second)):
        claims = verified(metadata, delivery.token, rp["client_id"])
        assert claims["sub"] == claims_of(tokens[rp["client_id"]]["id_token"])["sub"]
    # The retry is the same logout (its jti), and it stops there: delivered after two attempts.
    assert verified(metadata, first.token, flaky["client_id"])["jti"] == verified(metadata, second.token, flaky["client_id"])["jti"]
    [doc] = await eventually(lambda: _delivered(platform, flaky["client_id"]), timeout_s=10)
    assert doc["attempts"] == 2 and doc["last_error"] == "answered 503"
    metrics = requests.get(platform.stack.config.metrics_url("auth"), timeout=10).text
    assert 'harbour_backchannel_logout_deliveries_total{outcome="sent"}' in metrics
    assert 'harbour_backchannel_logout_deliveries_total{outcome="retry"}' in metrics


async def _delivered(platform, client_id: str) -> list[dict]:
    docs = await queued_for(platform, client_id)
    return docs if docs and all(d["state"] == "delivered" for d in docs) else []


async def test_a_replaced_phone_tells_the_rps(platform, metadata, receiver, tmp_path):
    person = identity(language="en")
    enrolled = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, selfie())
    old = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "old.json")
    await old.activate(enrolled["account_id"], enrolled["activation_code"], "old phone")
    rp = register(platform, client_name="Replaced RP", backchannel_logout_uri=receiver.url("replaced"))
    tokens, _ = await login(platform, metadata, rp, old, scope="openid offline_access")

    await CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json").recover_in_sandbox(person, selfie())
    [delivery] = await eventually(lambda: receiver.at("replaced"), timeout_s=20)
    claims = verified(metadata, delivery.token, rp["client_id"])
    assert claims["sub"] == claims_of(tokens["id_token"])["sub"] and claims["sid"] == claims_of(tokens["id_token"])["sid"]


async def test_an_account_closed_by_an_operator_tells_the_rps(platform, kiosk, metadata, receiver, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Closure RP", backchannel_logout_uri=receiver.url("closed"))
    tokens, _ = await login(platform, metadata, rp, citizen, scope="openid offline_access")

    closed = admin(platform, "close-account", citizen.profile.account_id, "--reason", "deceased (certificate D-1)")
    assert closed.returncode == 0, closed.stderr
    [delivery] = await eventually(lambda: receiver.at("closed"), timeout_s=20)
    claims = verified(metadata, delivery.token, rp["client_id"])
    assert claims["sub"] == claims_of(tokens["id_token"])["sub"] and claims["sid"] == claims_of(tokens["id_token"])["sid"]

"""Re-authentication of the same citizen through the gateway (issue 18): login_hint, id_token_hint, max_age, auth_time, acr.

A relying party that knows who should log in names them (`login_hint` = their
pairwise sub, or `id_token_hint` = an ID token it got for them): another
citizen's phone can neither claim nor decide the login, the ID token names
the same sub, and when the relying party pushed the request (PAR) the prompt
goes straight to that citizen's phone (its approvals stream); a
front-channel request, anyone's to make, puts nothing on a phone unasked. A forged or foreign hint, or one naming nobody, goes
back to the client as an error and starts no login. `max_age` forces a new
approval on the phone even with a live session, and `auth_time` is the time
of that approval.
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt as pyjwt
import pytest
import requests
from authlib.jose import JsonWebKey, JsonWebToken
from cryptography.hazmat.primitives.asymmetric import ec

from clients.citizen_app import AppError

from ..support.calls import device_auth, refused_with
from ..support.citizens import basic_citizen, enrolled_app
from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, login, register, status_url_of, token_request
from ..support.polling import eventually

pytestmark = pytest.mark.e2e

ACR_PLUS, ACR_BASIC = "urn:harbour-id:loa:plus", "urn:harbour-id:loa:basic"
STREAM = "/v1/approvals/stream"


def verified_id_token(metadata, token: str, client_id: str) -> dict:
    """The ID token's claims, its signature checked against the published keys, its iss and aud checked."""
    jwks = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    claims = JsonWebToken(["ES256"]).decode(token, jwks, claims_options={
        "iss": {"essential": True, "values": [metadata["issuer"]]}, "aud": {"essential": True, "values": [client_id]}})
    claims.validate()
    return dict(claims)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def tx_of(page: str) -> str:
    return parse_qs(urlsplit(app_link_of(page)).query)["tx"][0]


def redeemed(metadata, rp: dict, code: str, verifier: str) -> dict:
    answer = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def pushed_authorize_url(metadata, rp: dict, **overrides) -> tuple[str, str]:
    """The relying party pushes its request (PAR, client-authenticated): (the browser's URL, the code verifier)."""
    url, verifier = authorize_url(metadata, rp["client_id"], **overrides)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    pushed = requests.post(metadata["pushed_authorization_request_endpoint"], data=params,
                           auth=(rp["client_id"], rp["client_secret"]), timeout=10)
    assert pushed.status_code == 201, pushed.text
    reference = {"client_id": rp["client_id"], "request_uri": pushed.json()["request_uri"]}
    return requests.Request("GET", metadata["authorization_endpoint"], params=reference).prepare().url, verifier


async def opened_with_the_prompt_on_stream(app, open_page, timeout_s: float = 20) -> str:
    """Run `open_page()` (it returns the login's tx) with the phone's approvals stream open; return the tx once the
    stream has named the login's prompt."""
    token = await app.device_token()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_s)) as session:
        async with session.get(app.base + STREAM, headers=device_auth(app, token, "GET", app.base + STREAM)) as stream:
            assert stream.status == 200
            tx = open_page()
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("data:") and json.loads(line[5:])["approval_id"] == f"login-{tx}":
                    return tx
    raise AssertionError("the stream ended without the prompt")


async def test_a_hinted_login_reaches_that_citizen_alone_and_names_the_same_sub(platform, kiosk, metadata, tmp_path):
    chan = await enrolled_app(platform, kiosk, tmp_path, "chan")
    lee = await enrolled_app(platform, kiosk, tmp_path, "lee")
    rp = register(platform)
    first, _ = await login(platform, metadata, rp, chan)
    await login(platform, metadata, rp, lee)  # Lee is a citizen of this client too
    sub = claims_of(first["id_token"])["sub"]

    for hints in ({"login_hint": sub}, {"id_token_hint": first["id_token"]},
                  {"login_hint": sub, "id_token_hint": first["id_token"]}):
        browser = requests.Session()
        # Pushed by the relying party (client-authenticated): the prompt may go to the phone unasked.
        url, verifier = pushed_authorize_url(metadata, rp, **hints)
        pages: list[str] = []

        def open_page() -> str:
            page = browser.get(url, timeout=10)
            assert page.status_code == 200, page.text
            pages.append(page.text)
            return tx_of(page.text)

        # Nobody scans anything: the prompt arrives on Chan's phone (its approvals stream) as the page opens.
        tx = await opened_with_the_prompt_on_stream(chan, open_page)
        [page] = pages
        assert 'id="sent-to-phone"' in page
        approval_id = f"login-{tx}"
        prompt = await chan.show(approval_id)
        assert prompt["status"] == "pending" and prompt["requester"]["client_id"] == rp["client_id"]

        # Lee's phone: never shown the prompt, its claim of the link and its decision are refused.
        assert approval_id not in [p["approval_id"] for p in await lee.pending()]
        with pytest.raises(AppError) as claimed:
            await lee.open_link(app_link_of(page))
        refused_with(claimed.value, 403, "login-for-another-citizen")
        with pytest.raises(AppError) as decided:
            await lee.decide(approval_id, "approve", prompt=prompt)  # signed by Lee's device over what Chan was shown
        refused_with(decided.value, 404, "not-found")
        with pytest.raises(AppError) as shown:
            await lee.show(approval_id)
        assert shown.value.status == 404
        # The login did not complete: still pending for the browser, the prompt still Chan's to decide.
        assert browser.get(status_url_of(page), timeout=10).json()["status"] == "pending"
        assert (await chan.show(approval_id))["status"] == "pending"

        # Chan approves: the ID token names the same sub.
        before = int(time.time())
        outcome = await chan.decide(approval_id, "approve", prompt=prompt)
        after = time.time()
        tokens = redeemed(metadata, rp, query_of(outcome["redirect_to"])["code"], verifier)
        claims = verified_id_token(metadata, tokens["id_token"], rp["client_id"])
        assert claims["sub"] == sub
        assert before <= claims["auth_time"] <= after  # the time of Chan's approval
        assert claims["acr"] == ACR_PLUS  # kiosk-enrolled
        status = browser.get(status_url_of(page), timeout=10).json()
        assert status["status"] == "approved"


async def test_a_front_channel_hint_binds_the_login_but_sends_no_prompt(platform, kiosk, metadata, tmp_path):
    chan = await enrolled_app(platform, kiosk, tmp_path, "chan")
    lee = await enrolled_app(platform, kiosk, tmp_path, "lee")
    rp = register(platform)
    first, _ = await login(platform, metadata, rp, chan)
    sub = claims_of(first["id_token"])["sub"]
    for hints in ({"login_hint": sub}, {"id_token_hint": first["id_token"]}):
        url, verifier = authorize_url(metadata, rp["client_id"], **hints)
        page = requests.get(url, timeout=10)
        assert page.status_code == 200 and 'id="sent-to-phone"' not in page.text
        # Anyone can make this request: nothing lands on Chan's phone unasked (a pushed prompt is queued before
        # the page answers, so it would be there now).
        approval_id = f"login-{tx_of(page.text)}"
        assert approval_id not in [p["approval_id"] for p in await chan.pending()]
        # The login is Chan's alone all the same: Lee's claim is refused, Chan's scan is the prompt.
        with pytest.raises(AppError) as claimed:
            await lee.open_link(app_link_of(page.text))
        refused_with(claimed.value, 403, "login-for-another-citizen")
        outcome = await chan.open_link(app_link_of(page.text))
        assert outcome["prompt"]["approval_id"] == approval_id
        tokens = redeemed(metadata, rp, query_of(outcome["redirect_to"])["code"], verifier)
        assert verified_id_token(metadata, tokens["id_token"], rp["client_id"])["sub"] == sub


async def _login_prompt_of(app, tx: str) -> dict | None:
    return next((p for p in await app.pending() if p["approval_id"] == f"login-{tx}"), None)


def forged_hints(metadata, genuine: str, other_sub: str) -> dict[str, str]:
    """Copies of a genuine ID token no issuer signed as they stand."""
    header = pyjwt.get_unverified_header(genuine)
    claims = claims_of(genuine)
    head, _, signature = genuine.split(".")
    intruder = ec.generate_private_key(ec.SECP256R1())

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return {
        "alg-none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "our-kid-other-key": pyjwt.encode(claims, intruder, algorithm="ES256", headers={"kid": header["kid"], "typ": "JWT"}),
        "tampered-sub": f"{head}.{b64({**claims, 'sub': other_sub})}.{signature}",
        "other-issuer": pyjwt.encode({**claims, "iss": "https://elsewhere.example"}, intruder, algorithm="ES256",
                                     headers={"kid": "elsewhere", "typ": "JWT"}),
        "not-a-jwt": "hello",
    }


async def test_forged_foreign_and_unknown_hints_go_back_to_the_client_and_start_nothing(platform, kiosk, metadata, tmp_path):
    chan = await enrolled_app(platform, kiosk, tmp_path, "chan")
    lee = await enrolled_app(platform, kiosk, tmp_path, "lee")
    rp, other_rp = register(platform), register(platform, client_name="Other Portal")
    chan_tokens, _ = await login(platform, metadata, rp, chan)
    lee_sub = claims_of((await login(platform, metadata, rp, lee))[0]["id_token"])["sub"]
    chan_elsewhere, _ = await login(platform, metadata, other_rp, chan)

    refused = {
        **{f"forged {name}": {"id_token_hint": token} for name, token in forged_hints(metadata, chan_tokens["id_token"], lee_sub).items()},
        "another client's ID token": {"id_token_hint": chan_elsewhere["id_token"]},
        "an access token": {"id_token_hint": chan_tokens["access_token"]},
        "a sub of nobody": {"login_hint": "nobody"},
        "the citizen's sub at another client": {"login_hint": claims_of(chan_elsewhere["id_token"])["sub"]},
        "two citizens": {"login_hint": lee_sub, "id_token_hint": chan_tokens["id_token"]},
    }
    pending_before = {p["approval_id"] for p in await chan.pending()} | {p["approval_id"] for p in await lee.pending()}
    for case, hints in refused.items():
        for prompt, error in ((None, "invalid_request"), ("none", "login_required")):
            url, _ = authorize_url(metadata, rp["client_id"], state="s-hint", prompt=prompt, **hints)
            answer = requests.get(url, allow_redirects=False, timeout=10)
            assert answer.status_code == 303, (case, answer.status_code, answer.text[:300])
            location = answer.headers["Location"]
            assert location.startswith(REDIRECT + "?"), (case, location)
            back = query_of(location)
            assert back["error"] == error and back["state"] == "s-hint" and back["iss"] == metadata["issuer"], (case, back)
            assert "code" not in back
    # No prompt reached anyone's phone.
    assert {p["approval_id"] for p in await chan.pending()} | {p["approval_id"] for p in await lee.pending()} == pending_before
    # The genuine hint, for comparison, is a login page (pushed: its prompt on Chan's phone).
    genuine = requests.get(pushed_authorize_url(metadata, rp, id_token_hint=chan_tokens["id_token"])[0], timeout=10)
    assert genuine.status_code == 200 and 'id="sent-to-phone"' in genuine.text
    prompt = await eventually(lambda: _login_prompt_of(chan, tx_of(genuine.text)))
    assert prompt["status"] == "pending"


async def test_a_hint_for_a_plus_service_and_a_basic_citizen_is_refused_at_once(platform, kiosk, metadata, tmp_path):
    basic = await basic_citizen(platform, tmp_path)
    rp = register(platform)
    tokens, _ = await login(platform, metadata, rp, basic)
    assert claims_of(tokens["id_token"])["acr"] == ACR_BASIC  # acr follows the assurance level
    url, _ = authorize_url(metadata, rp["client_id"], login_hint=claims_of(tokens["id_token"])["sub"], acr_values=ACR_PLUS)
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and query_of(answer.headers["Location"])["error"] == "access_denied"
    assert await basic.pending() == []


async def test_max_age_forces_a_new_approval_even_with_a_live_session(platform, kiosk, metadata, tmp_path):
    chan = await enrolled_app(platform, kiosk, tmp_path, "chan")
    lee = await enrolled_app(platform, kiosk, tmp_path, "lee")
    rp = register(platform)
    lee_hint = (await login(platform, metadata, rp, lee))[0]["id_token"]
    browser = requests.Session()
    url, verifier = authorize_url(metadata, rp["client_id"])
    page = browser.get(url, timeout=10).text
    outcome = await chan.open_link(app_link_of(page))
    done = browser.get(browser.get(status_url_of(page), timeout=10).json()["redirect_to"], allow_redirects=False, timeout=10)
    assert "harbour_sid" in browser.cookies.get_dict()
    first = redeemed(metadata, rp, query_of(done.headers["Location"])["code"], verifier)
    first_claims = verified_id_token(metadata, first["id_token"], rp["client_id"])
    assert query_of(outcome["redirect_to"])["code"] == query_of(done.headers["Location"])["code"]

    # The session answers prompt=none within max_age, with the same auth_time (no new approval) and the same sub;
    # with id_token_hint too, since the session is that citizen's.
    for extra in ({"max_age": "3600"}, {"max_age": "3600", "id_token_hint": first["id_token"]}):
        silent_url, silent_verifier = authorize_url(metadata, rp["client_id"], prompt="none", **extra)
        silent = browser.get(silent_url, allow_redirects=False, timeout=10)
        assert silent.status_code == 303 and "code" in query_of(silent.headers["Location"]), silent.headers["Location"]
        again = verified_id_token(metadata, redeemed(metadata, rp, query_of(silent.headers["Location"])["code"], silent_verifier)["id_token"],
                                  rp["client_id"])
        assert (again["sub"], again["auth_time"], again["acr"]) == (first_claims["sub"], first_claims["auth_time"], ACR_PLUS)
    # Another citizen's hint in this browser: login_required, not Chan's session.
    other = browser.get(authorize_url(metadata, rp["client_id"], prompt="none", id_token_hint=lee_hint)[0], allow_redirects=False, timeout=10)
    assert query_of(other.headers["Location"])["error"] == "login_required"

    # A second later, max_age=0 (= prompt=login) and a small max_age refuse the session silently...
    await eventually(lambda: time.time() >= first_claims["auth_time"] + 2, timeout_s=5)
    for max_age in ("0", "1"):
        silent = browser.get(authorize_url(metadata, rp["client_id"], prompt="none", max_age=max_age)[0], allow_redirects=False, timeout=10)
        assert query_of(silent.headers["Location"])["error"] == "login_required", max_age
    # ...and interactively they show the login page despite the live session: a new approval, and auth_time moves.
    for extra in ({"max_age": "0"}, {"max_age": "1"}, {"prompt": "login"}, {"max_age": "0", "id_token_hint": first["id_token"]}):
        url, verifier = authorize_url(metadata, rp["client_id"], **extra)
        page = browser.get(url, allow_redirects=False, timeout=10)
        assert page.status_code == 200 and "harbourid://authorize" in page.text, extra
        before = time.time()
        outcome = await chan.open_link(app_link_of(page.text))
        claims = verified_id_token(metadata, redeemed(metadata, rp, query_of(outcome["redirect_to"])["code"], verifier)["id_token"],
                                   rp["client_id"])
        assert claims["sub"] == first_claims["sub"] and claims["acr"] == ACR_PLUS
        assert claims["auth_time"] > first_claims["auth_time"] and int(before) <= claims["auth_time"] <= time.time(), extra

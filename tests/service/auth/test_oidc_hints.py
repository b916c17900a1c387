"""Re-authentication in process, on auth's FrozenClock: an expired ID token as id_token_hint, hints at PAR, and
max_age against a session whose auth_time the clock sets exactly."""

from __future__ import annotations

import base64
import json
import re
import time

from libs.approvals import unseal_prompt

from ...support.auth_stand_in import published
from .oidc_steps import app_link_of, authorization_params, client_auth, query_of, redeem, register


async def authorize(auth_service, params: dict):
    return await auth_service.client.get("/oidc/authorize", params=params, allow_redirects=False)


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def logged_in(auth_service, rp: dict, phone, **overrides) -> tuple[dict, str]:
    """A browser login approved on the phone and completed: (the token response, the session cookie)."""
    params, verifier = authorization_params(rp, **overrides)
    page = await (await authorize(auth_service, params)).text()
    outcome = await phone.open_link(app_link_of(page))
    status_path = re.search(r'"statusUrl":\s*"([^"]+)"', page).group(1).removeprefix(auth_service.url)
    status = await (await auth_service.client.get(status_path)).json()
    done = await auth_service.client.get(status["redirect_to"].removeprefix(auth_service.url), allow_redirects=False)
    tokens = await redeem(auth_service, rp, query_of(outcome["redirect_to"])["code"], verifier)
    assert tokens.status == 200
    return await tokens.json(), done.cookies["harbour_sid"].value


async def test_an_expired_id_token_of_ours_is_a_hint_and_a_pushed_one_reaches_the_phone(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    tokens, _ = await logged_in(auth_service, rp, phone)
    claims = claims_of(tokens["id_token"])
    now = int(time.time())
    # What the relying party holds an hour later: the same ID token, expired (signed here by auth's own signer).
    signer = auth_service.context.signer
    expired = await signer.sign({**{k: v for k, v in claims.items() if k != "iss"}, "iat": now - 7200, "exp": now - 3600})
    pushed = await auth_service.client.post("/oidc/par", data=authorization_params(rp, id_token_hint=expired)[0],
                                            headers=client_auth(rp))
    assert pushed.status == 201, await pushed.text()
    page = await authorize(auth_service, {"client_id": rp["client_id"], "request_uri": (await pushed.json())["request_uri"]})
    assert page.status == 200, page.headers.get("Location")
    text = await page.text()
    assert 'id="sent-to-phone"' in text
    tx = app_link_of(text).split("tx=")[1]
    assert f"login-{tx}" in [p["approval_id"] for p in await phone.pending()]
    # The same claims as an access token (typ at+jwt) are no hint.
    as_access_token = await signer.sign({**{k: v for k, v in claims.items() if k != "iss"}}, typ="at+jwt")
    refused = await authorize(auth_service, authorization_params(rp, id_token_hint=as_access_token, state="s-at")[0])
    answer = query_of(refused.headers["Location"])
    assert (answer["error"], answer["state"]) == ("invalid_request", "s-at")
    assert "not an ID token of this issuer for this client" in answer["error_description"]


async def test_a_pushed_hinted_login_calls_the_citizen_to_the_phone_and_a_front_channel_one_does_not(
        auth_service, tmp_path):
    # The page says "we have sent this request to your app": with the app closed, only notify's message (from
    # approval.requested, published in the transaction that queued the prompt) makes that true. A hint in a plain
    # front-channel request is anyone's to send, so it reaches no phone: no prompt, no event.
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    tokens, _ = await logged_in(auth_service, rp, phone)
    sub = claims_of(tokens["id_token"])["sub"]
    front = await authorize(auth_service, authorization_params(rp, login_hint=sub)[0])
    front_tx = app_link_of(await front.text()).split("tx=")[1]
    assert await published(auth_service.context, "approval.requested", f"login-{front_tx}") == []
    assert await phone.pending() == []

    pushed = await auth_service.client.post("/oidc/par", data=authorization_params(rp, login_hint=sub)[0],
                                            headers=client_auth(rp))
    page = await authorize(auth_service, {"client_id": rp["client_id"], "request_uri": (await pushed.json())["request_uri"]})
    tx = app_link_of(await page.text()).split("tx=")[1]
    [event] = await published(auth_service.context, "approval.requested", f"login-{tx}")
    assert event.source == "/auth" and (event.data["account_id"], event.data["action"]) == (phone.profile.account_id, "login")
    assert unseal_prompt(event.data, auth_service.context.settings.sealing_jwk).purpose == f"Log in to {rp['client_name']}"
    assert [p["approval_id"] for p in await phone.pending()] == [f"login-{tx}"]


async def test_a_pushed_request_with_a_bad_hint_is_refused_at_the_push(auth_service, tmp_path):
    rp = await register(auth_service)
    pushed = await auth_service.client.post("/oidc/par", data=authorization_params(rp, login_hint="nobody")[0],
                                            headers=client_auth(rp))
    body = await pushed.json()
    assert pushed.status == 400 and body["error"] == "invalid_request"
    assert body["error_description"] == "the hint names no active citizen of this client"


async def test_max_age_and_auth_time_on_auth_s_clock(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    approved_at = int(clock.now().timestamp())
    tokens, cookie = await logged_in(auth_service, rp, phone)
    first = claims_of(tokens["id_token"])
    assert first["auth_time"] == approved_at and first["acr"] == "urn:harbour-id:loa:basic"  # self-registered: basic
    headers = {"Cookie": f"harbour_sid={cookie}"}

    async def silent(**overrides) -> dict:
        params, verifier = authorization_params(rp, prompt="none", **overrides)
        answer = query_of((await auth_service.client.get("/oidc/authorize", params=params, headers=headers,
                                                          allow_redirects=False)).headers["Location"])
        if "code" in answer:
            answer["tokens"] = await (await redeem(auth_service, rp, answer["code"], verifier)).json()
        return answer

    # In the very second of the approval: max_age=0 is prompt=login, never answered silently; max_age=60 is.
    assert (await silent(max_age="0"))["error"] == "login_required"
    assert "code" in await silent(max_age="60")
    clock.advance(61)
    assert (await silent(max_age="60"))["error"] == "login_required"  # 61 s old
    assert (await silent(max_age="0"))["error"] == "login_required"
    again = await silent(max_age="120", id_token_hint=tokens["id_token"])
    assert claims_of(again["tokens"]["id_token"])["auth_time"] == approved_at  # the session's, not now
    # Interactive with max_age: a new approval, whose time is the new auth_time.
    params, verifier = authorization_params(rp, max_age="60", login_hint=first["sub"])
    page = await (await auth_service.client.get("/oidc/authorize", params=params, headers=headers)).text()
    outcome = await phone.open_link(app_link_of(page))
    fresh = await (await redeem(auth_service, rp, query_of(outcome["redirect_to"])["code"], verifier)).json()
    assert claims_of(fresh["id_token"])["auth_time"] == approved_at + 61
    assert claims_of(fresh["id_token"])["sub"] == first["sub"]


async def test_logout_accepts_an_expired_id_token_as_its_hint(auth_service, tmp_path):
    rp = await register(auth_service, post_logout_redirect_uris=["https://rp.example/bye"])
    phone = await auth_service.citizen(tmp_path)
    tokens, cookie = await logged_in(auth_service, rp, phone)
    claims = claims_of(tokens["id_token"])
    now = int(time.time())
    expired = await auth_service.context.signer.sign(
        {**{k: v for k, v in claims.items() if k != "iss"}, "iat": now - 7200, "exp": now - 3600})
    # No cookie: the expired hint alone names the session (sid) and the client (aud) whose URI may be followed.
    out = await auth_service.client.get("/oidc/logout", allow_redirects=False, params={
        "id_token_hint": expired, "post_logout_redirect_uri": "https://rp.example/bye", "state": "bye"})
    assert out.status == 303 and out.headers["Location"] == "https://rp.example/bye?state=bye"
    params, _ = authorization_params(rp, prompt="none")
    silent = await auth_service.client.get("/oidc/authorize", params=params, headers={"Cookie": f"harbour_sid={cookie}"},
                                           allow_redirects=False)
    assert query_of(silent.headers["Location"])["error"] == "login_required"


async def test_ciba_takes_an_id_token_hint_too(auth_service, tmp_path):
    rp, other = await register(auth_service), await register(auth_service, client_name="Other")
    phone = await auth_service.citizen(tmp_path)
    tokens, _ = await logged_in(auth_service, rp, phone)
    foreign, _ = await logged_in(auth_service, other, phone)

    async def backchannel(**form):
        return await auth_service.client.post("/oidc/bc-authorize", data={"scope": "openid", **form}, headers=client_auth(rp))

    started = await backchannel(id_token_hint=tokens["id_token"], binding_message="Call 7")
    assert started.status == 200, await started.text()
    assert [p["details"]["binding_message"] for p in await phone.pending()] == ["Call 7"]
    refused = await backchannel(id_token_hint=foreign["id_token"])  # another client's
    assert refused.status == 400 and (await refused.json())["error"] == "invalid_request"
    both = await backchannel(id_token_hint=tokens["id_token"], login_hint=claims_of(tokens["id_token"])["sub"])
    assert both.status == 400 and (await both.json())["error"] == "invalid_request"  # CIBA §7.1: exactly one hint

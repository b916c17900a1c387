"""Login with Harbour ID, driven by an off-the-shelf OpenID Connect client (Authlib) and the reference app."""

from __future__ import annotations

import base64
import hashlib
import hmac as hmac_lib
import json
import re
import time

import jwt as pyjwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken

from clients.citizen_app import AppError

from libs.events import CloudEvent
from libs.events.topics import CLIENTS

from ..support.audit import audit_records
from ..support.broker import all_messages
from ..support.calls import refusal, refused_with
from ..support.citizens import basic_citizen, enrolled_app
from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, login, register, status_url_of, token_request
from ..support.operator import OPERATOR, admin
from ..support.polling import eventually

pytestmark = pytest.mark.e2e


def start_login(metadata, session: OAuth2Session, **params) -> tuple[str, str, str, str]:
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = session.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **params)
    page = requests.get(url, timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    return app_link_of(page.text), verifier, nonce, state


def validate_id_token(metadata, token: dict, client_id: str, nonce: str) -> dict:
    jwks = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    claims = JsonWebToken(["ES256"]).decode(
        token["id_token"], jwks, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "values": [metadata["issuer"]]}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate()
    return dict(claims)


async def test_authlib_code_flow_with_pkce_approved_on_the_phone(platform, kiosk, metadata, tmp_path):
    assert metadata["issuer"] == platform.gateway
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    session = OAuth2Session(rp["client_id"], rp["client_secret"], scope="openid", redirect_uri=REDIRECT,
                            code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic")
    link, verifier, nonce, state = start_login(metadata, session)

    # The phone opens the link, shows who asks, approves, and hands back the redirect.
    opened = await citizen.open_link(link)
    assert opened["prompt"]["requester"]["client_name"] == "Example Portal"
    redirect_to = opened["redirect_to"]
    assert redirect_to.startswith(REDIRECT + "?")
    assert f"state={state}" in redirect_to and "iss=" in redirect_to

    token = session.fetch_token(metadata["token_endpoint"], authorization_response=redirect_to, code_verifier=verifier)
    # No offline_access asked for: no refresh token (issue 14).
    assert token["token_type"] == "Bearer" and "refresh_token" not in token
    claims = validate_id_token(metadata, token, rp["client_id"], nonce)
    assert claims["acr"] == "urn:harbour-id:loa:plus" and claims["amr"] == ["swk"] and claims["sid"]  # no PIN: a software key alone
    userinfo = session.get(metadata["userinfo_endpoint"], timeout=10)
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == claims["sub"]


async def test_pairwise_subjects_differ_between_clients_and_stay_stable(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    bank, tax = register(platform, client_name="Bank"), register(platform, client_name="Tax")
    first_at_bank = claims_of((await login(platform, metadata, bank, citizen))[0]["id_token"])["sub"]
    at_tax = claims_of((await login(platform, metadata, tax, citizen))[0]["id_token"])["sub"]
    again_at_bank = claims_of((await login(platform, metadata, bank, citizen))[0]["id_token"])["sub"]
    assert first_at_bank == again_at_bank
    assert first_at_bank != at_tax
    assert citizen.profile.account_id not in (first_at_bank, at_tax)


async def test_two_device_browser_journey_sets_a_session_for_prompt_none(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    browser = requests.Session()
    url, verifier = authorize_url(metadata, rp["client_id"], state="two-device")
    page = browser.get(url, timeout=10).text
    status_url = status_url_of(page)
    assert browser.get(status_url, timeout=10).json()["status"] == "pending"
    await citizen.open_link(app_link_of(page))
    status = browser.get(status_url, timeout=10).json()
    assert status["status"] == "approved"
    done = browser.get(status["redirect_to"], allow_redirects=False, timeout=10)
    assert done.status_code == 303 and done.headers["Location"].startswith(REDIRECT)
    assert "state=two-device" in done.headers["Location"]
    assert "harbour_sid" in browser.cookies.get_dict()

    # prompt=none: this browser has a session, so a code comes back at once.
    silent_url, _ = authorize_url(metadata, rp["client_id"], prompt="none")
    silent = browser.get(silent_url, allow_redirects=False, timeout=10)
    assert silent.status_code == 303 and "code=" in silent.headers["Location"]
    # Another browser has none: login_required, and nothing issued.
    stranger = requests.get(silent_url, allow_redirects=False, timeout=10)
    assert stranger.status_code == 303
    assert "error=login_required" in stranger.headers["Location"] and "code=" not in stranger.headers["Location"]
    assert "iss=" in stranger.headers["Location"]


async def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_family(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    tokens, _ = await login(platform, metadata, rp, citizen, scope="openid offline_access")
    first = tokens["refresh_token"]
    rotated = token_request(metadata, rp, grant_type="refresh_token", refresh_token=first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first
    assert requests.get(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {second['access_token']}"}, timeout=10).status_code == 200

    # The old one again: theft. Refused, and the whole family with its access tokens is revoked.
    reused = token_request(metadata, rp, grant_type="refresh_token", refresh_token=first)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert token_request(metadata, rp, grant_type="refresh_token", refresh_token=second["refresh_token"]).json()["error"] == "invalid_grant"
    revoked = requests.get(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {second['access_token']}"}, timeout=10)
    assert revoked.status_code == 401 and 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]


async def test_a_reused_code_is_refused_and_revokes_what_it_issued(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    url, verifier = authorize_url(metadata, rp["client_id"], scope="openid offline_access")
    outcome = await citizen.open_link(app_link_of(requests.get(url, timeout=10).text))
    code = re.search(r"[?&]code=([^&]+)", outcome["redirect_to"]).group(1)
    exchange = dict(grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    tokens = token_request(metadata, rp, **exchange).json()
    again = token_request(metadata, rp, **exchange)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    revoked = requests.get(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10)
    assert revoked.status_code == 401 and revoked.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    refreshed = token_request(metadata, rp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
    ],
    ids=["missing-pkce", "plain-pkce", "implicit", "no-openid"],
)
def test_bad_authorization_requests_go_back_with_an_error_and_nothing_issued(platform, metadata, overrides, error):
    rp = register(platform)
    url, _ = authorize_url(metadata, rp["client_id"], state="s-1", **overrides)
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(REDIRECT) and f"error={error}" in location
    assert "state=s-1" in location and "iss=" in location and "code=" not in location


@pytest.mark.parametrize("redirect_uri", [REDIRECT + "/extra", "http://127.0.0.1:8765/elsewhere", "https://evil.example/callback"])
def test_unregistered_redirect_uris_are_never_redirected_to(platform, metadata, redirect_uri):
    rp = register(platform)
    url, _ = authorize_url(metadata, rp["client_id"], redirect_uri=redirect_uri)
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri" in response.text


async def test_a_wrong_pkce_verifier_gets_no_tokens(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    url, _ = authorize_url(metadata, rp["client_id"])
    outcome = await citizen.open_link(app_link_of(requests.get(url, timeout=10).text))
    code = re.search(r"[?&]code=([^&]+)", outcome["redirect_to"]).group(1)
    wrong = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=generate_token(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def forged_tokens(metadata, genuine: str) -> dict[str, str]:
    """Tampered copies of a genuine access token, each an attack the verifier must refuse."""
    claims = claims_of(genuine)
    header = pyjwt.get_unverified_header(genuine)
    jwks = requests.get(metadata["jwks_uri"], timeout=10).json()
    public = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public_pem = pyjwt.algorithms.ECAlgorithm.from_jwk(json.dumps(public)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    hs_header = {"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}
    signing_input = f"{b64(hs_header)}.{b64(claims)}".encode()
    hs256_with_public_key = signing_input.decode() + "." + base64.urlsafe_b64encode(
        hmac_lib.new(public_pem, signing_input, hashlib.sha256).digest()
    ).rstrip(b"=").decode()
    intruder = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    return {
        "alg-none": f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims)}.",
        "hs256-with-public-key": hs256_with_public_key,
        "unknown-kid": pyjwt.encode(claims, intruder, algorithm="ES256", headers={"kid": "not-ours", "typ": "at+jwt"}),
        "our-kid-other-key": pyjwt.encode(claims, intruder, algorithm="ES256", headers={"kid": header["kid"], "typ": "at+jwt"}),
        "tampered-claims": genuine.split(".")[0] + "." + b64({**claims, "scope": "openid sign"}) + "." + genuine.split(".")[2],
        "expired": pyjwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, intruder, algorithm="ES256", headers={"kid": header["kid"], "typ": "at+jwt"}),
    }


async def test_forged_access_tokens_are_refused(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    tokens, _ = await login(platform, metadata, rp, citizen)
    ok = requests.get(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10)
    assert ok.status_code == 200
    for attack, forged in forged_tokens(metadata, tokens["access_token"]).items():
        response = requests.get(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {forged}"}, timeout=10)
        assert response.status_code == 401, attack
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), attack
        introspected = requests.post(metadata["introspection_endpoint"], data={"token": forged}, auth=(rp["client_id"], rp["client_secret"]), timeout=10)
        assert introspected.json() == {"active": False}, attack
    # An ID token is not an access token (wrong audience and type).
    wrong_kind = requests.get(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['id_token']}"}, timeout=10)
    assert wrong_kind.status_code == 401 and wrong_kind.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


async def test_introspection_and_revocation(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp, other = register(platform), register(platform, client_name="Other")
    tokens, _ = await login(platform, metadata, rp, citizen, scope="openid offline_access")
    mine = requests.post(metadata["introspection_endpoint"], data={"token": tokens["access_token"]}, auth=(rp["client_id"], rp["client_secret"]), timeout=10).json()
    assert mine["active"] is True and mine["client_id"] == rp["client_id"] and mine["scope"] == "openid offline_access"
    theirs = requests.post(metadata["introspection_endpoint"], data={"token": tokens["access_token"]}, auth=(other["client_id"], other["client_secret"]), timeout=10).json()
    assert theirs == {"active": False}
    assert requests.post(metadata["revocation_endpoint"], data={"token": tokens["access_token"]}, auth=(rp["client_id"], rp["client_secret"]), timeout=10).status_code == 200
    after = requests.post(metadata["introspection_endpoint"], data={"token": tokens["access_token"]}, auth=(rp["client_id"], rp["client_secret"]), timeout=10).json()
    assert after == {"active": False}
    assert requests.post(metadata["revocation_endpoint"], data={"token": tokens["refresh_token"]}, auth=(rp["client_id"], rp["client_secret"]), timeout=10).status_code == 200
    refreshed = token_request(metadata, rp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_client_credentials_for_agencies_only(platform, metadata):
    agency = register(platform, client_name="Transport Department", kind="agency", redirect_uris=[], scope="notify")
    granted = token_request(metadata, agency, grant_type="client_credentials", scope="notify")
    assert granted.status_code == 200, granted.text
    assert claims_of(granted.json()["access_token"])["sub"] == agency["client_id"]
    assert "refresh_token" not in granted.json() and "id_token" not in granted.json()
    rp = register(platform)
    refused = token_request(metadata, rp, grant_type="client_credentials")
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    wrong_secret = requests.post(metadata["token_endpoint"], data={"grant_type": "client_credentials"}, auth=(agency["client_id"], "nope"), timeout=10)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"


def es256_client_key() -> tuple[ec.EllipticCurvePrivateKey, dict]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(key.public_key())) | {"kid": "rp-key-1", "use": "sig", "alg": "ES256"}
    return key, jwk


async def test_private_key_jwt_with_authlib_and_replay_refused(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    key, jwk = es256_client_key()
    rp = register(platform, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk]})
    assert "client_secret" not in rp
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Authlib signs with whatever joserfc key it is given (a PEM string is taken for RSA).
    session = OAuth2Session(rp["client_id"], ECKey.import_key(pem), scope="openid offline_access", redirect_uri=REDIRECT, code_challenge_method="S256",
                            token_endpoint_auth_method=PrivateKeyJWT(metadata["token_endpoint"], headers={"kid": "rp-key-1"}, alg="ES256"))
    link, verifier, nonce, _ = start_login(metadata, session)
    outcome = await citizen.open_link(link)
    token = session.fetch_token(metadata["token_endpoint"], authorization_response=outcome["redirect_to"], code_verifier=verifier)
    validate_id_token(metadata, token, rp["client_id"], nonce)

    # A client assertion is single-use: the same one again is refused.
    now = int(time.time())
    assertion = pyjwt.encode(
        {"iss": rp["client_id"], "sub": rp["client_id"], "aud": metadata["token_endpoint"], "iat": now, "exp": now + 60, "jti": generate_token(16)},
        key, algorithm="ES256", headers={"kid": "rp-key-1"},
    )
    form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion}
    assert requests.post(metadata["token_endpoint"], data=form, timeout=10).status_code == 200
    replay = requests.post(metadata["token_endpoint"], data=form, timeout=10)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    # Wrong audience, and a key that is not the client's, are refused too.
    for claims, signer in (
        ({"aud": "https://elsewhere.example/token"}, key),
        ({}, ec.generate_private_key(ec.SECP256R1())),
    ):
        bad = pyjwt.encode(
            {"iss": rp["client_id"], "sub": rp["client_id"], "aud": metadata["token_endpoint"], "iat": now, "exp": now + 60, "jti": generate_token(16), **claims},
            signer, algorithm="ES256", headers={"kid": "rp-key-1"},
        )
        refused = requests.post(metadata["token_endpoint"], data={**form, "client_assertion": bad}, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


async def test_ciba_poll_flow(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    call_centre = register(platform, client_name="Tax Hotline")
    sub = claims_of((await login(platform, metadata, call_centre, citizen))[0]["id_token"])["sub"]
    auth = (call_centre["client_id"], call_centre["client_secret"])
    started = requests.post(metadata["backchannel_authentication_endpoint"],
                            data={"scope": "openid", "login_hint": sub, "binding_message": "Call 4821"}, auth=auth, timeout=10)
    assert started.status_code == 200, started.text
    request_id = started.json()["auth_req_id"]
    poll = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": request_id}
    pending = requests.post(metadata["token_endpoint"], data=poll, auth=auth, timeout=10)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    assert requests.post(metadata["token_endpoint"], data=poll, auth=auth, timeout=10).json()["error"] == "slow_down"

    [prompt] = [p for p in await citizen.pending() if p["details"].get("binding_message") == "Call 4821"]
    assert prompt["requester"]["client_name"] == "Tax Hotline"
    await citizen.approve(prompt["approval_id"])
    # Poll as CIBA §11 tells a client to: at the given interval, 5 s more after each slow_down.
    interval = started.json()["interval"] + 5
    deadline = time.monotonic() + 40
    while True:
        time.sleep(interval)
        answer = requests.post(metadata["token_endpoint"], data=poll, auth=auth, timeout=10)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        assert answer.json()["error"] in ("authorization_pending", "slow_down")
        if answer.json()["error"] == "slow_down":
            interval += 5
    assert answer.status_code == 200, answer.text
    assert claims_of(answer.json()["id_token"])["sub"] == sub
    unknown = requests.post(metadata["backchannel_authentication_endpoint"], data={"scope": "openid", "login_hint": "nobody"}, auth=auth, timeout=10)
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_user_id"


async def test_step_up_demands_a_new_approval_and_the_right_assurance(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)  # kiosk-enrolled: plus
    rp = register(platform)
    browser = requests.Session()
    url, _ = authorize_url(metadata, rp["client_id"])
    page = browser.get(url, timeout=10).text
    await citizen.open_link(app_link_of(page))
    browser.get(browser.get(status_url_of(page), timeout=10).json()["redirect_to"], allow_redirects=False, timeout=10)
    # Asking for the plus level shows a new login page (a new approval), even with a session.
    step_up, _ = authorize_url(metadata, rp["client_id"], acr_values="urn:harbour-id:loa:plus", prompt="login")
    page = browser.get(step_up, allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "harbourid://authorize" in page.text
    outcome = await citizen.open_link(app_link_of(page.text))
    assert outcome["prompt"]["details"]["acr_values"] == ["urn:harbour-id:loa:plus"]
    assert "code=" in outcome["redirect_to"]
    # A self-registered (basic) citizen cannot meet plus: the phone is told so and no code is issued.
    basic = await basic_citizen(platform, tmp_path)
    page = requests.get(authorize_url(metadata, rp["client_id"], acr_values="urn:harbour-id:loa:plus")[0], timeout=10).text
    with pytest.raises(AppError) as refused:
        await basic.open_link(app_link_of(page))
    refused_with(refused.value, 403, "assurance-too-low")


async def test_par_and_form_post(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    verifier = generate_token(48)
    pushed = requests.post(
        metadata["pushed_authorization_request_endpoint"],
        data={"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid", "state": "par-1", "response_mode": "form_post",
              "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"},
        auth=(rp["client_id"], rp["client_secret"]), timeout=10,
    )
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    browser = requests.Session()
    url = requests.Request("GET", metadata["authorization_endpoint"], params={"client_id": rp["client_id"], "request_uri": request_uri}).prepare().url
    page = browser.get(url, timeout=10).text
    await citizen.open_link(app_link_of(page))
    done = browser.get(browser.get(status_url_of(page), timeout=10).json()["redirect_to"], allow_redirects=False, timeout=10)
    assert done.status_code == 200 and f'action="{REDIRECT}"' in done.text
    assert re.search(r'name="state" value="par-1"', done.text)
    code = re.search(r'name="code" value="([^"]+)"', done.text).group(1)
    assert token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier).status_code == 200
    # A pushed request is single-use.
    reused = browser.get(url, allow_redirects=False, timeout=10)
    assert reused.status_code == 400 and "Location" not in reused.headers and "invalid_request_uri" in reused.text


async def test_logout_ends_the_session(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, post_logout_redirect_uris=["http://127.0.0.1:8765/bye"])
    browser = requests.Session()
    url, verifier = authorize_url(metadata, rp["client_id"])
    page = browser.get(url, timeout=10).text
    await citizen.open_link(app_link_of(page))
    done = browser.get(browser.get(status_url_of(page), timeout=10).json()["redirect_to"], allow_redirects=False, timeout=10)
    code = re.search(r"[?&]code=([^&]+)", done.headers["Location"]).group(1)
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier).json()
    out = browser.get(metadata["end_session_endpoint"], params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:8765/bye", "state": "bye-1"},
                      allow_redirects=False, timeout=10)
    assert out.status_code == 303 and out.headers["Location"] == "http://127.0.0.1:8765/bye?state=bye-1"
    silent = browser.get(authorize_url(metadata, rp["client_id"], prompt="none")[0], allow_redirects=False, timeout=10)
    assert "error=login_required" in silent.headers["Location"]
    # An unregistered post-logout URI is not followed.
    elsewhere = browser.get(metadata["end_session_endpoint"], params={"post_logout_redirect_uri": "https://evil.example/"}, allow_redirects=False, timeout=10)
    assert elsewhere.status_code == 200 and "Location" not in elsewhere.headers


async def test_key_rotation_publishes_next_first_and_keeps_old_tokens_valid(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform)
    before, _ = await login(platform, metadata, rp, citizen)
    old_kid = pyjwt.get_unverified_header(before["access_token"])["kid"]
    published_before = {k["kid"] for k in requests.get(metadata["jwks_uri"], timeout=10).json()["keys"]}
    assert admin(platform, "rotate-keys").returncode == 2  # no reason: refused before anything rotates
    rotated = admin(platform, "rotate-keys", "--reason", "quarterly rotation")
    assert rotated.returncode == 0, rotated.stderr
    result = json.loads(rotated.stdout)
    # The rotation's audit record, from the rotation's transaction: who, why, which keys (the only keys.rotate: refused above).
    [audited] = await audit_records(platform, "auth", action="keys.rotate")
    assert audited["data"] == {"action": "keys.rotate", "actor": f"operator:{OPERATOR}", "outcome": "success",
                               "reason": "quarterly rotation", **result}
    # Linking the citizen's account to the relying party's pseudonym (a support case) is audited the same way.
    account_id = citizen.profile.account_id
    assert admin(platform, "subject", account_id, rp["client_id"]).returncode == 2
    resolved = admin(platform, "subject", account_id, rp["client_id"], "--reason", "support case 17", operator="wong.k")
    assert resolved.returncode == 0 and json.loads(resolved.stdout)["sub"] == claims_of(before["id_token"])["sub"]
    assert [a["data"] for a in await audit_records(platform, "auth", subject=account_id, action="subject.resolve")] == [{
        "action": "subject.resolve", "actor": "operator:wong.k", "outcome": "success", "reason": "support case 17",
        "client_id": rp["client_id"]}]
    # So is handing a client a new registration access token.
    assert admin(platform, "registration-token", rp["client_id"], "--reason", "token lost, ticket 42").returncode == 0
    [issued] = await audit_records(platform, "auth", subject=rp["client_id"], action="client.registration_token")
    assert (issued["data"]["actor"], issued["data"]["reason"]) == (f"operator:{OPERATOR}", "token lost, ticket 42")
    assert result["retired"] == old_kid and result["current"] in published_before  # the new signer was published in advance
    async def signed_with_the_new_key() -> dict | None:
        # auth's signer moves to the new key within its key cache's lifetime: log in until a token shows it.
        after, _ = await login(platform, metadata, rp, citizen)
        return after if pyjwt.get_unverified_header(after["access_token"])["kid"] == result["current"] else None

    await eventually(signed_with_the_new_key, timeout_s=15)
    published_after = {k["kid"] for k in requests.get(metadata["jwks_uri"], timeout=10).json()["keys"]}
    assert {old_kid, result["current"], result["next"]} <= published_after
    # A token signed before the rotation still verifies.
    assert requests.get(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {before['access_token']}"}, timeout=10).status_code == 200


async def test_client_registration_is_validated_updated_and_published(platform):
    bad = requests.post(platform.gateway + "/v1/clients", json={"client_name": "X", "redirect_uris": ["http://evil.example/cb"]}, timeout=10)
    assert "redirect_uris" in {e["field"].split("/")[0] for e in refusal(bad, 422, "validation-failed")["errors"]}
    kiosk = requests.post(platform.gateway + "/v1/clients", json={"client_name": "Fake kiosk", "kind": "kiosk", "scope": "enrol"}, timeout=10)
    refusal(kiosk, 403, "forbidden")  # the sandbox cannot mint kiosks
    admin_token = platform.env()["HARBOUR_ADMIN_TOKEN"]
    real_kiosk = requests.post(platform.gateway + "/v1/clients", json={"client_name": "Kiosk", "kind": "kiosk", "scope": "enrol"},
                               headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
    assert real_kiosk.status_code == 201

    rp = register(platform)
    update = {"client_name": "Example Portal (new name)", "redirect_uris": [REDIRECT, REDIRECT + "2"], "scope": "openid"}
    other = register(platform, client_name="Someone else")
    forbidden = requests.put(f"{platform.gateway}/v1/clients/{rp['client_id']}", json=update,
                             headers={"Authorization": f"Bearer {other['registration_access_token']}"}, timeout=10)
    refusal(forbidden, 401, "unauthorized")
    # The name citizens read is the operators' to change (RFC 7592 self-service is tested in test_client_registry.py).
    updated = requests.put(f"{platform.gateway}/v1/clients/{rp['client_id']}", json=update,
                           headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
    assert updated.status_code == 200 and updated.json()["client_name"] == "Example Portal (new name)"

    async def published() -> set[str]:
        messages = await all_messages(platform.infra.kafka_bootstrap, [CLIENTS.name])
        return {CloudEvent.from_json(m.value).type for m in messages if m.key == rp["client_id"].encode()}

    async def both() -> bool:
        return await published() == {"client.registered", "client.updated"}

    await eventually(both)

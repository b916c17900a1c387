"""Login with Harbour ID, driven by an off-the-shelf OpenID Connect client (Authlib) and the reference app."""

from __future__ import annotations

import json
import re
import secrets

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken

from .citizens import cli, create_kiosk, enrolled_app

pytestmark = pytest.mark.e2e
REDIRECT = "http://127.0.0.1:8765/callback"  # nothing listens: the test reads the redirect instead of following it


@pytest.fixture(scope="module")
def kiosk(platform):
    return create_kiosk(platform)


@pytest.fixture(scope="module")
def metadata(platform):
    response = requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200
    return response.json()


def register(platform, **overrides) -> dict:
    body = {"client_name": "Example Portal", "redirect_uris": [REDIRECT], "scope": "openid offline_access", **overrides}
    response = requests.post(platform.gateway + "/v1/clients", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def app_link_of(page: str) -> str:
    match = re.search(r'href="(harbourid://authorize\?tx=[^"]+)"', page)
    assert match, "the login page carries no app link"
    return match.group(1).replace("&amp;", "&")


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

    # The phone opens the link (the CLI, as a person would), approves, and hands back the redirect.
    opened = cli(platform, citizen.profile_path, "open", link)
    assert opened.returncode == 0, opened.stderr
    shown = json.loads(opened.stderr.strip().splitlines()[-1])
    assert shown["request"]["requester"]["client_name"] == "Example Portal"
    redirect_to = opened.stdout.strip()
    assert redirect_to.startswith(REDIRECT + "?")
    assert f"state={state}" in redirect_to and "iss=" in redirect_to

    token = session.fetch_token(metadata["token_endpoint"], authorization_response=redirect_to, code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    claims = validate_id_token(metadata, token, rp["client_id"], nonce)
    assert claims["acr"] == "urn:harbour-id:loa:plus" and "hwk" in claims["amr"] and claims["sid"]
    userinfo = session.get(metadata["userinfo_endpoint"], timeout=10)
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == claims["sub"]

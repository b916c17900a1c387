"""A relying party's side of OpenID Connect through the gateway: register, send the citizen to log in, redeem the code."""

from __future__ import annotations

import base64
import json
import re

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

REDIRECT = "http://127.0.0.1:8765/callback"  # nothing listens: the test reads the redirect instead of following it


def register(platform, **overrides) -> dict:
    """A relying party registered in the sandbox (no operator token): its registration answer."""
    body = {"client_name": "Example Portal", "redirect_uris": [REDIRECT], "scope": "openid offline_access", **overrides}
    response = requests.post(platform.gateway + "/v1/clients", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def app_link_of(page: str) -> str:
    match = re.search(r'href="(harbourid://authorize\?tx=[^"]+)"', page)
    assert match, "the login page carries no app link"
    return match.group(1).replace("&amp;", "&")


def status_url_of(page: str) -> str:
    """The URL the page's script polls, read from its JSON configuration."""
    match = re.search(r'"statusUrl":\s*("[^"]+")', page)
    assert match, "the login page carries no status URL"
    return json.loads(match.group(1))


def authorize_url(metadata, client_id: str, **overrides) -> tuple[str, str]:
    """An authorization request with PKCE: (its URL, the code verifier). A None override drops the parameter."""
    verifier = generate_token(48)
    params = {
        "client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
        "state": generate_token(12), "nonce": generate_token(12),
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    return requests.Request("GET", metadata["authorization_endpoint"], params=params).prepare().url, verifier


def token_request(metadata, rp: dict, **form) -> requests.Response:
    return requests.post(metadata["token_endpoint"], data=form, auth=(rp["client_id"], rp["client_secret"]), timeout=10)


async def login(platform, metadata, rp, citizen, **overrides) -> tuple[dict, str]:
    """One approved login: (the token response, the code it redeemed)."""
    url, verifier = authorize_url(metadata, rp["client_id"], **overrides)
    page = requests.get(url, timeout=10)
    assert page.status_code == 200, page.text
    outcome = await citizen.open_link(app_link_of(page.text))
    code = re.search(r"[?&]code=([^&]+)", outcome["redirect_to"]).group(1)
    response = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    assert response.status_code == 200, response.text
    return response.json(), code


async def logged_in_token(metadata, rp: dict, app, scope: str) -> str:
    """The access token of one login with `scope`, approved on the citizen's phone."""
    url, verifier = authorize_url(metadata, rp["client_id"], scope=scope)
    outcome = await app.open_link(app_link_of(requests.get(url, timeout=10).text))
    code = outcome["redirect_to"].split("code=")[1].split("&")[0]
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier).json()
    return tokens["access_token"]


def client_token(metadata, rp: dict, scope: str) -> str:
    """The relying party's own access token (client credentials) for `scope`."""
    return token_request(metadata, rp, grant_type="client_credentials", scope=scope).json()["access_token"]


def claims_of(token: str) -> dict:
    """A JWT's claims, unverified."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

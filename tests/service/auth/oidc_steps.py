"""A relying party's steps against auth in process (the `auth_service` fixture): register, log a citizen in, call the token endpoint."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ...support.auth_stand_in import published

REDIRECT = "https://rp.example/callback"  # nothing listens: the tests read the redirect instead of following it
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def register(auth_service, **overrides) -> dict:
    """A relying party registered in the sandbox: its registration answer (client_id, client_secret...)."""
    body = {"client_name": "Example Portal", "redirect_uris": [REDIRECT], "scope": "openid offline_access", **overrides}
    response = await auth_service.client.post("/v1/clients", json=body)
    assert response.status == 201, await response.text()
    return await response.json()


def authorization_params(rp: dict, **overrides) -> tuple[dict[str, str], str]:
    """An authorization request with PKCE: (its parameters, the code verifier). A None override drops the parameter."""
    verifier = generate_token(48)
    params = {
        "client_id": rp["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
        "state": generate_token(12), "nonce": generate_token(12),
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256", **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}, verifier


def app_link_of(page: str) -> str:
    match = re.search(r'href="(harbourid://authorize\?tx=[^"]+)"', page)
    assert match, "the login page carries no app link"
    return match.group(1).replace("&amp;", "&")


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def approved_code(auth_service, rp: dict, phone, **overrides) -> tuple[str, str]:
    """The citizen approves a login on the phone: (the authorization code, its PKCE verifier)."""
    params, verifier = authorization_params(rp, **overrides)
    page = await auth_service.client.get("/oidc/authorize", params=params)
    assert page.status == 200, await page.text()
    outcome = await phone.open_link(app_link_of(await page.text()))
    return query_of(outcome["redirect_to"])["code"], verifier


def basic(client_id: str, secret: str) -> dict[str, str]:
    """client_secret_basic (RFC 6749 §2.3.1)."""
    return {"Authorization": aiohttp.encode_basic_auth(client_id, secret)}


def client_auth(rp: dict) -> dict[str, str]:
    return basic(rp["client_id"], rp["client_secret"])


async def token_request(auth_service, rp: dict, **form) -> aiohttp.ClientResponse:
    return await auth_service.client.post("/oidc/token", data=form, headers=client_auth(rp))


async def redeem(auth_service, rp: dict, code: str, verifier: str) -> aiohttp.ClientResponse:
    return await token_request(auth_service, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                               code_verifier=verifier)


async def oauth_error(response: aiohttp.ClientResponse, status: int, error: str) -> str:
    """Asserts an RFC 6749 §5.2 answer (never cached); returns its description."""
    body = await response.json()
    assert (response.status, body["error"]) == (status, error), body
    assert {k: response.headers[k] for k in NO_STORE} == NO_STORE
    assert set(body) == {"error", "error_description"}
    return body["error_description"]


async def audits(auth_service, subject: str, action: str) -> list[dict]:
    """The data of auth's audit records of `action` about `subject` (its outbox), oldest first."""
    return [e.data for e in await published(auth_service.context, "audit.recorded", subject) if e.data["action"] == action]

"""A relying party's side of form filling: ask for fields, follow the request, verify and open the release."""

from __future__ import annotations

import json

import requests
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from .calls import bearer
from .citizens import pending_prompt
from .oidc import register
from .polling import eventually

FIELDS = ["name_en", "date_of_birth", "email", "phone", "address"]


def rp_with_key(platform) -> tuple[dict, jwcrypto_jwk.JWK]:
    """A relying party allowed FIELDS, with the key formfill encrypts its releases to."""
    key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    public = json.loads(key.export_public())
    rp = register(platform, client_name="Harbour Water", scope="openid formfill", formfill_fields=FIELDS, encryption_jwk=public)
    return rp, key


def ask(platform, token: str, fields: list[tuple[str, bool]], purpose="Open a water account", **extra) -> requests.Response:
    body = {"fields": [{"name": n, "required": r} for n, r in fields], "purpose": purpose, **extra}
    return requests.post(platform.gateway + "/v1/formfill/requests", json=body, headers=bearer(token), timeout=10)


async def created(platform, token, fields, **extra) -> dict:
    """POST the request, retrying while formfill has not yet heard of the client or citizen (409 + Retry-After)."""
    async def attempt():
        response = ask(platform, token, fields, **extra)
        assert response.status_code in (201, 409), response.text
        return response.json() if response.status_code == 201 else None

    return await eventually(attempt, timeout_s=20)


def status_of(platform, token, request_id) -> dict:
    return requests.get(f"{platform.gateway}/v1/formfill/requests/{request_id}", headers=bearer(token), timeout=10).json()


def result_of(platform, token, request_id) -> requests.Response:
    return requests.get(f"{platform.gateway}/v1/formfill/requests/{request_id}/result", headers=bearer(token), timeout=10)


async def wait_for_status(platform, token, request_id, wanted: str) -> dict:
    return await eventually(lambda: (s := status_of(platform, token, request_id))["status"] == wanted and s, timeout_s=20)


async def prompt_for(app, request_id: str, *, timeout_s: float = 20) -> dict:
    """The citizen's prompt for a form-fill request, once it reaches the phone."""
    return await pending_prompt(app, f"formfill-{request_id}", timeout_s=timeout_s)


def verified_claims(platform, compact_jws: str) -> dict:
    """What the relying party does with jwcrypto (the server signs with PyJWT): verify against formfill's JWKS."""
    jwks = jwcrypto_jwk.JWKSet.from_json(requests.get(platform.gateway + "/v1/formfill/jwks", timeout=10).text)
    token = jwcrypto_jws.JWS()
    token.deserialize(compact_jws)
    token.verify(jwks.get_key(token.jose_header["kid"]), alg="ES256")
    return json.loads(token.payload)

"""Who is calling notify: an agency (a client-credentials access token with scope `notify`) or a citizen's device.

Both are auth's ES256 tokens, checked here against auth's JWKS (the gateway
checked them too: defence in depth, and the service is safe without it).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from libs.service import Forbidden, Unauthorized
from libs.tokens import InvalidToken, JWKSCache

DEVICE_AUDIENCE = "harbour-device"
SCOPE = "notify"


@dataclass(frozen=True)
class Agency:
    client_id: str


@dataclass(frozen=True)
class Citizen:
    account_id: str
    device_id: str


def _token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an access token is required", headers={"WWW-Authenticate": 'Bearer realm="harbour-id"'})
    return token.strip()


def _invalid(exc: InvalidToken) -> Unauthorized:
    return Unauthorized(str(exc), headers={"WWW-Authenticate": f'Bearer realm="harbour-id", error="invalid_token", error_description="{exc}"'})


async def agency(request: web.Request, jwks: JWKSCache, issuer: str) -> Agency:
    try:
        claims = await jwks.verify(_token(request), audience=issuer, issuer=issuer, typ="at+jwt")
    except InvalidToken as exc:
        raise _invalid(exc) from None
    if SCOPE not in str(claims.get("scope", "")).split():
        raise Forbidden("the token lacks the notify scope", headers={"WWW-Authenticate": 'Bearer realm="harbour-id", error="insufficient_scope", scope="notify"'})
    client_id = claims.get("client_id")
    if not isinstance(client_id, str) or claims.get("sub") != client_id:
        # A token about a citizen is not the agency speaking for itself: notify takes client credentials only.
        raise Forbidden("notify takes the agency's own client-credentials token, not a citizen's access token")
    return Agency(client_id)


async def device(request: web.Request, jwks: JWKSCache, issuer: str) -> Citizen:
    try:
        claims = await jwks.verify(_token(request), audience=DEVICE_AUDIENCE, issuer=issuer, typ="at+jwt")
    except InvalidToken as exc:
        raise _invalid(exc) from None
    return Citizen(account_id=claims["sub"], device_id=str(claims.get("device_id")))

"""Who is calling signing: a relying party (its access token from auth) or a citizen's device (device token).

The same checks as formfill's callers (services do not import each other):
auth's ES256 tokens verified against auth's JWKS, the relying party's token
carrying the `sign` scope. A token from a login names the citizen by pairwise
`sub`; one from the client-credentials grant names nobody (anonymous journey).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from libs.service import Forbidden, Unauthorized
from libs.tokens import InvalidToken, JWKSCache

DEVICE_AUDIENCE = "harbour-device"
SCOPE = "sign"


@dataclass(frozen=True)
class RelyingParty:
    client_id: str
    sub: str | None  # None: a client-credentials token, no citizen yet


@dataclass(frozen=True)
class Device:
    account_id: str
    device_id: str


def _token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an access token is required", headers={"WWW-Authenticate": 'Bearer realm="harbour-id"'})
    return token.strip()


def _invalid(exc: InvalidToken) -> Unauthorized:
    return Unauthorized(str(exc), headers={"WWW-Authenticate": f'Bearer realm="harbour-id", error="invalid_token", error_description="{exc}"'})


async def relying_party(request: web.Request, jwks: JWKSCache, issuer: str) -> RelyingParty:
    try:
        claims = await jwks.verify(_token(request), audience=issuer, issuer=issuer, typ="at+jwt")
    except InvalidToken as exc:
        raise _invalid(exc) from None
    if SCOPE not in str(claims.get("scope", "")).split():
        raise Forbidden("the token lacks the sign scope", headers={"WWW-Authenticate": f'Bearer realm="harbour-id", error="insufficient_scope", scope="{SCOPE}"'})
    client_id = claims.get("client_id")
    if not isinstance(client_id, str):
        raise _invalid(InvalidToken("the token names no client"))
    return RelyingParty(client_id, None if claims["sub"] == client_id else claims["sub"])


async def device(request: web.Request, jwks: JWKSCache, issuer: str) -> Device:
    try:
        claims = await jwks.verify(_token(request), audience=DEVICE_AUDIENCE, issuer=issuer, typ="at+jwt")
    except InvalidToken as exc:
        raise _invalid(exc) from None
    return Device(account_id=claims["sub"], device_id=str(claims.get("device_id")))

"""Who is calling formfill: a relying party (its access token from auth) or a citizen's device (device token).

Both are auth's ES256 tokens, checked by libs/revocation/callers.py against
auth's JWKS and the revocation list (the gateway checked them too). A relying
party's token names the citizen by pairwise `sub` — or, from the
client-credentials grant, nobody (anonymous journeys).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from libs.revocation.callers import DEVICE_AUDIENCE, access_token_claims, device_token_claims, invalid_token
from libs.tokens import JWKSCache

__all__ = ["DEVICE_AUDIENCE", "Device", "RelyingParty", "device", "relying_party"]
SCOPE = "formfill"


@dataclass(frozen=True)
class RelyingParty:
    client_id: str
    sub: str | None  # None: a client-credentials token, no citizen yet


@dataclass(frozen=True)
class Device:
    account_id: str
    device_id: str


async def relying_party(request: web.Request, jwks: JWKSCache, issuer: str) -> RelyingParty:
    claims = await access_token_claims(request, jwks, issuer, scope=SCOPE)
    client_id = claims.get("client_id")
    if not isinstance(client_id, str):
        raise invalid_token("the token names no client")
    return RelyingParty(client_id, None if claims["sub"] == client_id else claims["sub"])


async def device(request: web.Request, jwks: JWKSCache, issuer: str) -> Device:
    claims = await device_token_claims(request, jwks, issuer)
    return Device(account_id=claims["sub"], device_id=str(claims.get("device_id")))

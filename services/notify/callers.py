"""Who is calling notify: an agency (a client-credentials access token with scope `notify`) or a citizen's device.

Both are auth's ES256 tokens, checked by libs/revocation/callers.py against
auth's JWKS and the revocation list (the gateway checked them too: defence in
depth, and the service is safe without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from libs.revocation.callers import DEVICE_AUDIENCE, access_token_claims, device_token_claims
from libs.service import Forbidden
from libs.tokens import JWKSCache

__all__ = ["DEVICE_AUDIENCE", "Agency", "Citizen", "agency", "device"]
SCOPE = "notify"


@dataclass(frozen=True)
class Agency:
    client_id: str


@dataclass(frozen=True)
class Citizen:
    account_id: str
    device_id: str
    # The device token's verified claims: a live stream re-checks them against the revocation list and their expiry.
    claims: dict[str, Any] | None = field(default=None, compare=False)


async def agency(request: web.Request, jwks: JWKSCache, issuer: str) -> Agency:
    claims = await access_token_claims(request, jwks, issuer, scope=SCOPE)
    client_id = claims.get("client_id")
    if not isinstance(client_id, str) or claims.get("sub") != client_id:
        # A token about a citizen is not the agency speaking for itself: notify takes client credentials only.
        raise Forbidden("notify takes the agency's own client-credentials token, not a citizen's access token")
    return Agency(client_id)


async def device(request: web.Request, jwks: JWKSCache, issuer: str) -> Citizen:
    claims = await device_token_claims(request, jwks, issuer)
    return Citizen(account_id=claims["sub"], device_id=str(claims.get("device_id")), claims=claims)

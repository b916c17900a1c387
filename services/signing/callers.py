"""Who is calling signing: a relying party with the `sign` scope, or a citizen's device (device token).

The checks are libs/callers (auth's JWKS and the revocation list; the gateway
checked them too). A token from a login names the citizen by pairwise `sub`;
one from the client-credentials grant names nobody (anonymous journey).
"""

from __future__ import annotations

from aiohttp import web

from libs import callers
from libs.callers import Device, RelyingParty, device
from libs.tokens import JWKSCache

__all__ = ["Device", "RelyingParty", "device", "relying_party"]
SCOPE = "sign"


async def relying_party(request: web.Request, jwks: JWKSCache, issuer: str) -> RelyingParty:
    return await callers.relying_party(request, jwks, issuer, scope=SCOPE)

"""Who is calling formfill: a relying party with the `formfill` scope, or a citizen's device (device token).

The checks are libs/callers (auth's JWKS and the revocation list; the gateway
checked them too). A relying party's token names the citizen by pairwise
`sub` — or, from the client-credentials grant, nobody (anonymous journeys).
"""

from __future__ import annotations

from aiohttp import web

from libs import callers
from libs.callers import Device, RelyingParty, device
from libs.tokens import JWKSCache

__all__ = ["Device", "RelyingParty", "device", "relying_party"]
SCOPE = "formfill"


async def relying_party(request: web.Request, jwks: JWKSCache, issuer: str) -> RelyingParty:
    return await callers.relying_party(request, jwks, issuer, scope=SCOPE)

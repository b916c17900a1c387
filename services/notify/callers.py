"""Who is calling notify: an agency (a client-credentials access token with scope `notify`) or a citizen's device.

The checks are libs/callers (auth's JWKS and the revocation list; the gateway
checked them too: defence in depth, and the service is safe without it).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from libs.callers import Device, access_token_claims, device
from libs.tokens import JWKSCache

from .errors import NotAgencyToken

__all__ = ["Agency", "Citizen", "agency", "device"]
SCOPE = "notify"
# The citizen behind a device token; its verified claims ride along for the live stream's re-checks.
Citizen = Device


@dataclass(frozen=True)
class Agency:
    client_id: str


async def agency(request: web.Request, jwks: JWKSCache, issuer: str) -> Agency:
    claims = await access_token_claims(request, jwks, issuer, scopes=[SCOPE])
    client_id = claims.get("client_id")
    if not isinstance(client_id, str) or claims.get("sub") != client_id:
        # A token about a citizen is not the agency speaking for itself: notify takes client credentials only.
        raise NotAgencyToken("notify takes the agency's own client-credentials token, not a citizen's access token")
    return Agency(client_id)

"""Who is calling a resource service: the bearer-token checks formfill, notify and signing share.

auth's ES256 access tokens (a relying party's or agency's, audience = the
issuer) and device tokens (audience `harbour-device`) are verified against
auth's JWKS, then looked up in the process's revocation list, so a token,
device or account auth revoked is refused here within seconds even though
the token's signature and expiry are still good. Each service keeps its own
names for its callers (services/*/callers.py) on top of these.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from libs.service import Forbidden, ServiceUnavailable, Unauthorized
from libs.tokens import InvalidToken, JWKSCache

from .follower import REVOCATIONS, NotLoaded

DEVICE_AUDIENCE = "harbour-device"
ACCESS_TOKEN_TYP = "at+jwt"  # RFC 9068, device tokens too


def bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an access token is required", headers={"WWW-Authenticate": 'Bearer realm="harbour-id"'})
    return token.strip()


def invalid_token(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": f'Bearer realm="harbour-id", error="invalid_token", error_description="{detail}"'})


def refusal(app: web.Application, claims: dict[str, Any]) -> str | None:
    """Why the process's revocation list refuses these verified claims, or None; 503 while the list is loading."""
    revocations = app.get(REVOCATIONS)
    if revocations is None:
        # A service that forgot install_revocations must not silently honour revoked tokens.
        raise ServiceUnavailable("revocations are not followed by this service")
    try:
        return revocations.refusal(claims)
    except NotLoaded as exc:
        raise ServiceUnavailable(str(exc), headers={"Retry-After": "1"}) from None


async def verified_claims(request: web.Request, jwks: JWKSCache, issuer: str, *, audience: str) -> dict[str, Any]:
    """The claims of the request's bearer token: signature, issuer, audience, type, expiry, then revocation."""
    try:
        claims = await jwks.verify(bearer_token(request), audience=audience, issuer=issuer, typ=ACCESS_TOKEN_TYP)
    except InvalidToken as exc:
        raise invalid_token(str(exc)) from None
    reason = refusal(request.app, claims)
    if reason:
        raise invalid_token(reason)
    return claims


async def access_token_claims(request: web.Request, jwks: JWKSCache, issuer: str, *, scope: str) -> dict[str, Any]:
    """A relying party's or agency's access token carrying `scope`."""
    claims = await verified_claims(request, jwks, issuer, audience=issuer)
    if scope not in str(claims.get("scope", "")).split():
        raise Forbidden(f"the token lacks the {scope} scope",
                        headers={"WWW-Authenticate": f'Bearer realm="harbour-id", error="insufficient_scope", scope="{scope}"'})
    return claims


async def device_token_claims(request: web.Request, jwks: JWKSCache, issuer: str) -> dict[str, Any]:
    """A citizen's device token."""
    return await verified_claims(request, jwks, issuer, audience=DEVICE_AUDIENCE)

"""The claims of a caller's bearer token, verified the one way every Harbour ID process does it.

auth's ES256 tokens are verified against auth's JWKS (signature, issuer,
audience, `at+jwt` type, expiry), then looked up in the process's revocation
list, so a token, device or account auth revoked is refused within seconds
even though its signature and expiry are still good.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from libs.revocation.follower import REVOCATIONS, NotLoaded
from libs.tokens import ACCESS_TOKEN_TYP, DEVICE_AUDIENCE, InvalidToken, JWKSCache

from .authorization import bearer_token
from .refusals import InsufficientScope, InvalidAccessToken, RevocationsLoading, RevocationsNotFollowed, TokenRequired


def revocation_refusal(app: web.Application, claims: dict[str, Any]) -> str | None:
    """Why the process's revocation list refuses these verified claims, or None; 503 while the list is loading."""
    revocations = app.get(REVOCATIONS)
    if revocations is None:
        raise RevocationsNotFollowed()
    try:
        return revocations.refusal(claims)
    except NotLoaded as exc:
        raise RevocationsLoading(str(exc)) from None


async def verified_claims(request: web.Request, jwks: JWKSCache, issuer: str, *, audience: str) -> dict[str, Any]:
    """The claims of the request's bearer token: signature, issuer, audience, type, expiry, then revocation."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise TokenRequired()
    try:
        claims = await jwks.verify(token, audience=audience, issuer=issuer, typ=ACCESS_TOKEN_TYP)
    except InvalidToken as exc:
        raise InvalidAccessToken(str(exc)) from None
    reason = revocation_refusal(request.app, claims)
    if reason:
        raise InvalidAccessToken(reason)
    return claims


def require_scopes(claims: dict[str, Any], scopes: Sequence[str]) -> None:
    """403 insufficient-scope unless the token grants every one of `scopes`."""
    granted = set(str(claims.get("scope", "")).split())
    missing = [scope for scope in scopes if scope not in granted]
    if missing:
        raise InsufficientScope(scopes, missing)


async def access_token_claims(request: web.Request, jwks: JWKSCache, issuer: str, *, scopes: Sequence[str]) -> dict[str, Any]:
    """A relying party's or agency's access token (audience = the issuer) carrying every one of `scopes`."""
    claims = await verified_claims(request, jwks, issuer, audience=issuer)
    require_scopes(claims, scopes)
    return claims


async def device_token_claims(request: web.Request, jwks: JWKSCache, issuer: str) -> dict[str, Any]:
    """A citizen's device token."""
    return await verified_claims(request, jwks, issuer, audience=DEVICE_AUDIENCE)

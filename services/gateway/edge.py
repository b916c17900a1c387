"""Authentication at the edge: refuse what is certainly wrong before any upstream sees it.

Tokens go through the same checks as in every service (libs/callers: auth's
JWKS, type, audience, expiry, the revocation list the gateway follows, then
scopes); failures are 401 with a `WWW-Authenticate` challenge (RFC 6750 §3)
or 403 `insufficient_scope`. The owning service verifies again: the edge is
a filter, not the only lock. A DPoP-bound token's proof is checked here too
(libs/callers.check_sender, for the issuer's URL + the path, which the
gateway forwards unchanged) and again by the service, each with its own
replay window.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from libs.callers import ClientCredentialsRequired, basic_credentials, require_scopes, verified_claims
from libs.tokens import DEVICE_AUDIENCE, JWKSCache

from .routes import Policy


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as the edge can tell: the key for per-client rate limits."""

    key: str | None
    # False for an HTTP Basic user name: the edge only reads it, the owning service checks the secret.
    verified: bool = True


def _basic_username(request: web.Request) -> str | None:
    credentials = basic_credentials(request.headers.get("Authorization"))
    return credentials[0] if credentials else None


async def authorize(request: web.Request, policy: Policy, jwks: JWKSCache, issuer: str) -> Caller:
    if policy.kind == "public":
        user = _basic_username(request)
        return Caller(f"client:{user}" if user else None, verified=False)
    if policy.kind == "client":
        user = _basic_username(request)
        if user is None:
            raise ClientCredentialsRequired("client credentials (HTTP Basic) are required")
        return Caller(f"client:{user}", verified=False)
    audience = DEVICE_AUDIENCE if policy.kind == "device" else issuer
    claims = await verified_claims(request, jwks, issuer, audience=audience)
    require_scopes(claims, policy.scopes)
    caller = claims.get("device_id") or claims.get("client_id") or claims["sub"]
    return Caller(f"{policy.kind}:{caller}")

"""Authentication at the edge: refuse what is certainly wrong before any upstream sees it.

Tokens are verified against auth's JWKS (signature, issuer, audience, expiry,
type), looked up in the revocation list the gateway follows (libs/revocation:
a revoked token, device or account is refused here within seconds) and scopes
checked; failures are 401 with a `WWW-Authenticate`
challenge (RFC 6750 §3) or 403 `insufficient_scope`. The owning service
verifies again: the edge is a filter, not the only lock.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from aiohttp import web

from libs.revocation.callers import refusal
from libs.service.problems import Problem
from libs.tokens import InvalidToken, JWKSCache

from .routes import Policy

DEVICE_AUDIENCE = "harbour-device"
ACCESS_TOKEN_TYP = "at+jwt"


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as the edge can tell: the key for per-client rate limits."""

    key: str | None
    # False for an HTTP Basic user name: the edge only reads it, the owning service checks the secret.
    verified: bool = True


def _challenge(scheme: str, error: str | None = None, description: str | None = None, scope: str | None = None) -> str:
    """RFC 6750 §3: `Bearer realm="…", error="…", error_description="…", scope="…"`."""
    params = [("realm", "harbour-id"), ("error", error), ("error_description", description), ("scope", scope)]
    return scheme + " " + ", ".join(f'{k}="{v.replace(chr(34), chr(39))}"' for k, v in params if v)


def unauthorized(scheme: str, detail: str, error: str | None = None) -> Problem:
    return Problem(detail, status=401, title="Unauthorized", slug="unauthorized",
                   headers={"WWW-Authenticate": _challenge(scheme, error, detail if error else None)})


def _basic_username(header: str) -> str | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, sep, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return user if sep and user and secret else None


async def authorize(request: web.Request, policy: Policy, jwks: JWKSCache, issuer: str) -> Caller:
    header = request.headers.get("Authorization", "")
    if policy.kind == "public":
        user = _basic_username(header)
        return Caller(f"client:{user}" if user else None, verified=False)
    if policy.kind == "client":
        user = _basic_username(header)
        if user is None:
            raise unauthorized("Basic", "client credentials (HTTP Basic) are required")
        return Caller(f"client:{user}", verified=False)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Bearer", "an access token is required")
    audience = DEVICE_AUDIENCE if policy.kind == "device" else issuer
    try:
        claims = await jwks.verify(token.strip(), audience=audience, issuer=issuer, typ=ACCESS_TOKEN_TYP)
    except InvalidToken as exc:
        raise unauthorized("Bearer", str(exc), error="invalid_token") from None
    revoked = refusal(request.app, claims)
    if revoked:
        raise unauthorized("Bearer", revoked, error="invalid_token")
    granted = set(str(claims.get("scope", "")).split())
    missing = [s for s in policy.scopes if s not in granted]
    if missing:
        raise Problem(
            f"the token lacks the scope: {' '.join(missing)}", status=403, title="Forbidden", slug="insufficient-scope",
            headers={"WWW-Authenticate": _challenge("Bearer", "insufficient_scope", None, " ".join(policy.scopes))},
        )
    caller = claims.get("device_id") or claims.get("client_id") or claims["sub"]
    return Caller(f"{policy.kind}:{caller}")

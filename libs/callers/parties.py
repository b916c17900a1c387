"""Who is calling a resource service (formfill, signing, notify): a relying party or a citizen's device."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web

from libs.tokens import JWKSCache

from .refusals import InvalidAccessToken
from .verification import access_token_claims, device_token_claims


@dataclass(frozen=True)
class RelyingParty:
    client_id: str
    # The citizen by pairwise `sub`; None for a client-credentials token (the client speaking for itself).
    sub: str | None


@dataclass(frozen=True)
class Device:
    account_id: str
    device_id: str
    # The device token's verified claims: a live stream re-checks them against the revocation list and their expiry.
    claims: dict[str, Any] | None = field(default=None, compare=False)


async def relying_party(request: web.Request, jwks: JWKSCache, issuer: str, *, scope: str) -> RelyingParty:
    """The relying party behind an access token with `scope` (from a login or the client-credentials grant)."""
    claims = await access_token_claims(request, jwks, issuer, scopes=[scope])
    client_id = claims.get("client_id")
    if not isinstance(client_id, str):
        raise InvalidAccessToken("the token names no client")
    return RelyingParty(client_id, None if claims["sub"] == client_id else claims["sub"])


async def device(request: web.Request, jwks: JWKSCache, issuer: str) -> Device:
    """The citizen's device behind a device token."""
    claims = await device_token_claims(request, jwks, issuer)
    return Device(account_id=claims["sub"], device_id=str(claims.get("device_id")), claims=claims)


class _Settings(Protocol):
    issuer: str


class ResourceContext(Protocol):
    """What a resource service's context offers the checks: auth's JWKS and the issuer its tokens name."""

    jwks: JWKSCache
    settings: _Settings


C = TypeVar("C")


def caller_of(context: web.AppKey[Any], check: Callable[..., Awaitable[C]], **options: Any) -> Callable[[web.Request], Awaitable[C]]:
    """`check` (relying_party, device, or a service's own) as an endpoint's `caller`: it takes the request alone,
    and verifies with the JWKS and issuer of the service context stored under `context`."""

    async def caller(request: web.Request) -> C:
        ctx: ResourceContext = request.app[context]
        return await check(request, ctx.jwks, ctx.settings.issuer, **options)

    caller.__name__ = caller.__qualname__ = f"calling_{check.__name__}"
    return caller

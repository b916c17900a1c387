"""The claims of a caller's bearer token, verified the one way every Harbour ID process does it.

auth's ES256 tokens are verified against auth's JWKS (signature, issuer,
audience, `at+jwt` type, expiry), then looked up in the process's revocation
list, so a token, device or account auth revoked is refused within seconds
even though its signature and expiry are still good.

A DPoP-bound access token (`cnf.jkt`, RFC 9449) is accepted only as
`Authorization: DPoP <token>` with a `DPoP` proof for this request: `htm` its
method, `htu` the issuer's public base + its path (the URL the client called
at the gateway; the gateway forwards the path unchanged, so a service compares
the same URL without trusting a forwarded header), `ath` the token's hash, a
fresh `iat`, a `jti` not seen in this process's replay window, and the key's
thumbprint = `cnf.jkt` (libs/tokens/dpop.py). Device tokens carry `cnf.jkt`
(the device key's thumbprint) and are checked the same way: the citizen app
signs each call's proof with its device key. The proof is checked once per
request: an event stream keeps the claims verified at connect.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from libs.revocation.follower import REVOCATIONS, NotLoaded
from libs.tokens import ACCESS_TOKEN_TYP, DEVICE_AUDIENCE, InvalidToken, JWKSCache
from libs.tokens import dpop

from .authorization import access_token_of
from .refusals import (InsufficientScope, InvalidAccessToken, InvalidDPoPProof, InvalidDPoPToken, RevocationsLoading,
                       RevocationsNotFollowed, TokenRequired)

# Each application's (each process's) DPoP jtis seen within the replay window.
_REPLAYS: "weakref.WeakKeyDictionary[web.Application, dpop.ReplayCache]" = weakref.WeakKeyDictionary()


def replay_cache(app: web.Application) -> dpop.ReplayCache:
    cache = _REPLAYS.get(app)
    if cache is None:
        cache = _REPLAYS[app] = dpop.ReplayCache()
    return cache


def check_sender(request: web.Request, issuer: str, scheme: str, token: str, claims: dict[str, Any]) -> None:
    """RFC 9449 §7: a DPoP-bound token (`cnf.jkt`) only with its proof for this request; a DPoP-scheme token only
    if bound. The request's URL is the issuer's public base + its path (see the module's docstring)."""
    jkt = (claims.get("cnf") or {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
    if scheme != "DPoP":
        if jkt:
            raise InvalidDPoPToken("this token is DPoP-bound: present it as Authorization: DPoP with a DPoP proof")
        return
    if not jkt:
        raise InvalidAccessToken("this token is not DPoP-bound: present it as a Bearer token")
    proofs = request.headers.getall("DPoP", [])
    if len(proofs) != 1:
        raise InvalidDPoPProof("exactly one DPoP proof header is required")
    url = issuer.rstrip("/") + request.raw_path.split("?", 1)[0]
    try:
        proof = dpop.verify_proof(proofs[0], method=request.method, url=url, access_token=token)
    except dpop.InvalidProof as exc:
        raise InvalidDPoPProof(str(exc)) from None
    if proof.jkt != jkt:
        raise InvalidDPoPProof("the proof's key is not the key the token is bound to")
    if not replay_cache(request.app).first_use(f"{proof.jkt}:{proof.jti}"):
        raise InvalidDPoPProof("this DPoP proof was already used")


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
    presented = access_token_of(request.headers.get("Authorization"))
    if presented is None:
        raise TokenRequired()
    scheme, token = presented
    try:
        claims = await jwks.verify(token, audience=audience, issuer=issuer, typ=ACCESS_TOKEN_TYP)
    except InvalidToken as exc:
        raise InvalidAccessToken(str(exc)) from None
    reason = revocation_refusal(request.app, claims)
    if reason:
        raise InvalidAccessToken(reason)
    check_sender(request, issuer, scheme, token, claims)
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

"""A published JWKS, fetched and cached: auth's own (every service verifies auth's tokens) or a client's (`jwks_uri`).

The document is fetched again once it is older than `max_age_s`, and an
unknown `kid` triggers a fetch too — at most one per `min_refresh_s`, so a
flood of tokens with invented key ids cannot turn into a flood of fetches.

What a failed fetch means is the owner's policy (`serve_stale`): auth's keys
keep verifying while auth is unreachable (the keys we know are still auth's);
a client's document that could not be fetched again is not trusted past its
age, and the caller learns it (JWKSUnavailable).

A cache may also remember the tokens it verified (`verified_cache_size`: the
gateway's, formfill's, notify's and signing's): the same token presented again is answered from memory until it
expires (same leeway as the check), as long as its key is still published
and the document is fresh. Only the signature and claims checks are skipped:
the revocation list is the caller's, consulted on every request.

The transport is the owner's too: auth's JWKS comes over the service's own
session from an internal URL; a client's through libs/outbound (SSRF-guarded).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec

from .jwk import InvalidKey, load_public_jwk
from .jws import LEEWAY_S, InvalidToken, unverified_header, verify


class JWKSUnavailable(Exception):
    """The document could not be fetched (the reason is for the log, not for the caller of an endpoint)."""


Fetch = Callable[[str], Awaitable[Any]]


def session_fetch(session: aiohttp.ClientSession, *, timeout_s: float = 5.0) -> Fetch:
    """A fetch over an aiohttp session: the parsed JSON, or JWKSUnavailable."""

    async def fetch(url: str) -> Any:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                response.raise_for_status()
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JWKSUnavailable(type(exc).__name__) from None

    return fetch


class JWKSCache:
    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession | None = None,
        *,
        fetch: Fetch | None = None,
        max_age_s: float = 300.0,
        min_refresh_s: float = 10.0,
        serve_stale: bool = True,
        verified_cache_size: int = 0,
    ) -> None:
        if (session is None) == (fetch is None):
            raise ValueError("give either a session or a fetch")
        self.url = url
        self._fetch = fetch or session_fetch(session)  # type: ignore[arg-type]
        self.max_age_s = max_age_s
        self.min_refresh_s = min_refresh_s
        self.serve_stale = serve_stale
        self._jwks: list[dict[str, Any]] = []
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at = float("-inf")  # the last fetch that succeeded
        self._attempted_at = float("-inf")
        self._failure: JWKSUnavailable | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        # (token, audience, issuer, typ) -> (claims, kid, exp): tokens verified already, least recently used first.
        self.verified_cache_size = verified_cache_size
        self._verified: OrderedDict[tuple, tuple[dict[str, Any], str, float]] = OrderedDict()

    def _expired(self) -> bool:
        return time.monotonic() - self._fetched_at > self.max_age_s

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._attempted_at < self.min_refresh_s:
                return  # someone just fetched, or we fetched recently: do not hammer the publisher
            self._attempted_at = time.monotonic()
            self.fetches += 1
            try:
                document = await self._fetch(self.url)
            except JWKSUnavailable as exc:
                self._failure = exc
                return
            entries = document.get("keys") if isinstance(document, dict) else None
            self._jwks = [jwk for jwk in entries if isinstance(jwk, dict)] if isinstance(entries, list) else []
            keys = {}
            for jwk in self._jwks:
                try:
                    keys[jwk["kid"]] = load_public_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})
                except (InvalidKey, KeyError, TypeError):
                    continue
            self._keys = keys
            self._fetched_at = time.monotonic()
            self._failure = None

    async def jwks(self, kid: str | None = None) -> list[dict[str, Any]]:
        """The document's keys as published (JWK dicts), fetched again if old or if `kid` is not among them."""
        if self._expired() or (kid is not None and kid not in self._keys):
            await self._refresh()
        if self._expired() and not self.serve_stale:
            raise self._failure or JWKSUnavailable("no document fetched yet")
        return self._jwks

    async def key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        await self.jwks(kid)
        return self._keys.get(kid)

    async def verify(self, token: str, *, audience: str, issuer: str, typ: str | None = None) -> dict[str, Any]:
        if self.verified_cache_size:
            remembered = self._verified.get((token, audience, issuer, typ))
            if remembered is not None:
                claims, kid, exp = remembered
                if time.time() < exp + LEEWAY_S and kid in self._keys and not self._expired():
                    self._verified.move_to_end((token, audience, issuer, typ))
                    return dict(claims)
                del self._verified[(token, audience, issuer, typ)]
        kid = unverified_header(token).get("kid")
        key = await self.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("the token was signed by an unknown key")
        claims = verify(token, key, audience=audience, issuer=issuer, require=("exp", "iat", "sub", "iss", "aud"), typ=typ)
        if self.verified_cache_size and isinstance(claims.get("exp"), (int, float)):
            self._verified[(token, audience, issuer, typ)] = (dict(claims), kid, float(claims["exp"]))
            if len(self._verified) > self.verified_cache_size:
                self._verified.popitem(last=False)
        return claims

"""A cached JWKS of auth, for verifying auth's tokens anywhere (the one allowed synchronous dependency).

Keys are refreshed when the cache is older than `max_age_s`, and an unknown
`kid` triggers at most one refresh per `min_refresh_s`: a flood of tokens
with invented key ids cannot turn into a flood of JWKS fetches.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec

from .jwk import InvalidKey, load_public_jwk
from .jws import InvalidToken, unverified_header, verify


class JWKSCache:
    def __init__(self, url: str, session: aiohttp.ClientSession, *, max_age_s: float = 300.0, min_refresh_s: float = 10.0) -> None:
        self.url = url
        self.session = session
        self.max_age_s = max_age_s
        self.min_refresh_s = min_refresh_s
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self.min_refresh_s:
                return  # someone just refreshed, or we refreshed recently: do not hammer auth
            self._fetched_at = time.monotonic()
            self.fetches += 1
            async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                response.raise_for_status()
                document: dict[str, Any] = await response.json()
            keys = {}
            for jwk in document.get("keys", []):
                try:
                    keys[jwk["kid"]] = load_public_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})
                except (InvalidKey, KeyError):
                    continue
            self._keys = keys

    async def key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        if time.monotonic() - self._fetched_at > self.max_age_s or kid not in self._keys:
            try:
                await self._refresh()
            except (aiohttp.ClientError, TimeoutError):
                pass  # keep serving the keys we have
        return self._keys.get(kid)

    async def verify(self, token: str, *, audience: str, issuer: str, typ: str | None = None) -> dict[str, Any]:
        kid = unverified_header(token).get("kid")
        key = await self.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("the token was signed by an unknown key")
        return verify(token, key, audience=audience, issuer=issuer, require=("exp", "iat", "sub", "iss", "aud"), typ=typ)

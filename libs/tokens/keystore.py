"""A service's signing keys (RFC 7517 JWKS) and their rotation: auth's token keys, formfill's release keys.

Three states: `next` (published, not yet signing), `current` (signing) and
`retired` (published until every token it signed has expired). A relying
party that caches the JWKS therefore always knows a key before it sees a token
signed with it. `rotate` promotes next → current, current → retired, and
makes a new next; every step runs in one transaction that also bumps a state
document, so concurrent rotations serialise. Private keys are stored
encrypted under the key-encryption-key ring.

The published keys are read once and kept: a process that runs `watch()`
(auth) checks the state document's version in the background every
`cache_s` and reads the keys again only when a rotation bumped it (or once a
minute, so retired keys leave on time), so signing a token and serving the
JWKS never wait on the database; the JWKS document is built once per key
set. Without `watch()` the keys are read again on use once older than `cache_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto import FieldCipher, Keyring
from libs.service.logging import get_logger
from libs.store import in_transaction

from .jwk import generate_private_key, public_jwk, thumbprint
from .jws import InvalidToken, sign, unverified_header, verify

STATE_ID = "_state"
# A watched store reads its keys again at least this often, so a retired key leaves the JWKS on time.
RELOAD_EVERY_S = 60.0
log = get_logger("harbour.tokens.keystore")


@dataclass(frozen=True)
class TokenKey:
    kid: str
    status: str
    private_key: ec.EllipticCurvePrivateKey
    retired_at: datetime | None = None
    activated_at: datetime | None = None

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.private_key) | {"kid": self.kid, "use": "sig", "alg": "ES256"}


class KeyStore:
    def __init__(
        self, mongo: AsyncMongoClient, db: AsyncDatabase, keyring: Keyring, *, max_token_lifetime_s: int,
        cache_s: float = 5.0, collection: str = "token_keys",
    ) -> None:
        self.mongo = mongo
        self.collection = db[collection]
        self.cipher = FieldCipher(keyring)
        # A retired key stays published this long: the longest-lived token it signed, plus clock skew.
        self.retention = timedelta(seconds=max_token_lifetime_s + 120)
        self.cache_s = cache_s
        self._cached: list[TokenKey] = []
        self._loaded_at = 0.0
        self._version: Any = None  # the state document's version when the keys were read
        self._jwks: dict[str, list[dict[str, str]]] | None = None  # built once per key set
        self._watched = False

    def _new_key_doc(self, status: str, now: datetime) -> dict[str, Any]:
        key = generate_private_key()
        kid = thumbprint(public_jwk(key))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        return {
            "_id": kid,
            "status": status,
            "sealed_private_key": self.cipher.encrypt_record({"pem": pem}, record_id=kid),
            "created_at": now,
            "activated_at": now if status == "current" else None,
        }

    async def _bump(self, session: AsyncClientSession) -> None:
        await self.collection.update_one({"_id": STATE_ID}, {"$inc": {"version": 1}}, upsert=True, session=session)

    async def ensure(self) -> None:
        """First start: a current key and a published next key."""

        async def work(session: AsyncClientSession) -> None:
            await self._bump(session)
            if await self.collection.find_one({"status": "current"}, session=session) is None:
                now = datetime.now(UTC)
                await self.collection.insert_many([self._new_key_doc("current", now), self._new_key_doc("next", now)], session=session)

        await in_transaction(self.mongo, work)
        self._loaded_at = 0.0

    async def rotate(self, audit: Callable[[AsyncClientSession, dict[str, str]], Awaitable[None]] | None = None) -> dict[str, str]:
        """next → current, current → retired, a new next; `audit(session, result)` in the same transaction (the operator's record)."""
        async def work(session: AsyncClientSession) -> dict[str, str]:
            await self._bump(session)
            now = datetime.now(UTC)
            current = await self.collection.find_one({"status": "current"}, session=session)
            following = await self.collection.find_one({"status": "next"}, session=session)
            if current is None or following is None:
                raise RuntimeError("no current/next key: start auth once first")
            await self.collection.update_one({"_id": current["_id"]}, {"$set": {"status": "retired", "retired_at": now}}, session=session)
            await self.collection.update_one({"_id": following["_id"]}, {"$set": {"status": "current", "activated_at": now}}, session=session)
            new_next = self._new_key_doc("next", now)
            await self.collection.insert_one(new_next, session=session)
            # Retired keys whose tokens have all expired leave the JWKS for good.
            await self.collection.delete_many({"status": "retired", "retired_at": {"$lt": now - self.retention}}, session=session)
            result = {"retired": current["_id"], "current": following["_id"], "next": new_next["_id"]}
            if audit is not None:
                await audit(session, result)
            return result

        result = await in_transaction(self.mongo, work)
        self._loaded_at = 0.0
        return result

    async def published(self, *, fresh: bool = False) -> list[TokenKey]:
        if fresh or not self._loaded_at or (not self._watched and time.monotonic() - self._loaded_at > self.cache_s):
            await self._load()
        return self._cached

    async def _load(self) -> None:
        # The version first: a rotation committing meanwhile is seen as a newer version at the next check.
        state = await self.collection.find_one({"_id": STATE_ID}, {"version": 1})
        cutoff = datetime.now(UTC) - self.retention
        docs = await self.collection.find({"status": {"$in": ["next", "current", "retired"]}}).to_list()
        keys = []
        for doc in docs:
            if doc["status"] == "retired" and doc["retired_at"] < cutoff:
                continue
            pem = self.cipher.decrypt_record(doc["sealed_private_key"], record_id=doc["_id"])["pem"]
            private_key = serialization.load_pem_private_key(pem.encode(), password=None)
            keys.append(TokenKey(doc["_id"], doc["status"], private_key, doc.get("retired_at"), doc.get("activated_at")))
        self._cached = keys
        self._jwks = None
        self._version = (state or {}).get("version")
        self._loaded_at = time.monotonic()

    async def watch(self) -> None:
        """Keep the keys current from the background (run as a task for the process's lifetime)."""
        self._watched = True
        try:
            while True:
                await asyncio.sleep(self.cache_s)
                try:
                    state = await self.collection.find_one({"_id": STATE_ID}, {"version": 1})
                    if (state or {}).get("version") != self._version or time.monotonic() - self._loaded_at > RELOAD_EVERY_S:
                        await self._load()
                except Exception as exc:  # the database away: keep signing with the keys we have
                    log.warning("signing keys not re-read", error=type(exc).__name__)
        finally:
            self._watched = False

    async def current(self) -> TokenKey:
        for key in await self.published():
            if key.status == "current":
                return key
        raise RuntimeError("no current signing key")

    async def find(self, kid: str) -> TokenKey | None:
        """A published key by id; an unknown id triggers one fresh read (a rotation elsewhere)."""
        for fresh in (False, True):
            for key in await self.published(fresh=fresh):
                if key.kid == kid:
                    return key
        return None

    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        keys = await self.published()
        if self._jwks is None:
            order = {"current": 0, "next": 1, "retired": 2}
            self._jwks = {"keys": [k.public_jwk() for k in sorted(keys, key=lambda k: order[k.status])]}
        return self._jwks


class TokenSigner:
    """Signs auth's tokens with the current key; verifies against every published key."""

    def __init__(self, keys: KeyStore, issuer: str) -> None:
        self.keys = keys
        self.issuer = issuer

    async def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        key = await self.keys.current()
        return sign({"iss": self.issuer, **claims}, key.private_key, headers={"kid": key.kid, "typ": typ})

    async def verify(
        self, token: str, *, audience: str | None, typ: str | None = None, require: tuple[str, ...] = ("exp", "iat", "sub", "iss"),
        accept_expired: bool = False,
    ) -> dict[str, Any]:
        kid = unverified_header(token).get("kid")
        key = await self.keys.find(kid) if isinstance(kid, str) else None
        if key is None or key.status == "next":
            raise InvalidToken("the token was signed by an unknown key")
        return verify(token, key.private_key.public_key(), audience=audience, issuer=self.issuer, require=require, typ=typ,
                      accept_expired=accept_expired)

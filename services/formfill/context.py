"""What formfill's use cases need, gathered at start-up (no aiohttp here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto import FieldCipher
from libs.events import OutboxRelay
from libs.service.backbone import commit
from libs.tokens import JWKSCache
from libs.tokens.keystore import KeyStore, TokenSigner

from .settings import FormfillSettings

T = TypeVar("T")


@dataclass(frozen=True)
class Formfill:
    settings: FormfillSettings
    mongo: AsyncMongoClient
    db: AsyncDatabase
    cipher: FieldCipher
    jwks: JWKSCache
    keys: KeyStore
    signer: TokenSigner
    relay: OutboxRelay

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        return await commit(self.mongo, self.relay, work)

    @property
    def release_issuer(self) -> str:
        return f"{self.settings.issuer}/v1/formfill"

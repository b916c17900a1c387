"""What notify's use cases need, gathered at start-up (no aiohttp here). Shared by the API and the dispatcher."""

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

from .settings import NotifySettings

T = TypeVar("T")


@dataclass(frozen=True)
class Notify:
    settings: NotifySettings
    mongo: AsyncMongoClient
    db: AsyncDatabase
    cipher: FieldCipher
    jwks: JWKSCache
    keys: KeyStore
    signer: TokenSigner
    relay: OutboxRelay

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        return await commit(self.mongo, self.relay, work)

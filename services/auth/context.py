"""What auth's use cases need, gathered once at start-up and handed to the domain (no aiohttp here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto.fields import FieldCipher
from libs.events import OutboxRelay
from libs.service.backbone import commit

from libs.tokens.keystore import KeyStore, TokenSigner
from .identity.proofing import FaceMatcher
from .settings import AuthSettings

T = TypeVar("T")


@dataclass(frozen=True)
class Auth:
    settings: AuthSettings
    mongo: AsyncMongoClient
    db: AsyncDatabase
    keys: KeyStore
    signer: TokenSigner
    matcher: FaceMatcher
    relay: OutboxRelay

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        return await commit(self.mongo, self.relay, work)

    @property
    def field_cipher(self) -> FieldCipher:
        """Field-level encryption at rest under auth's KEK ring (free text from relying parties)."""
        return FieldCipher(self.settings.keyring)

    @property
    def devices_audience(self) -> str:
        return f"{self.settings.issuer}/v1/devices"

    @property
    def device_token_audience(self) -> str:
        return f"{self.settings.issuer}/v1/devices/token"

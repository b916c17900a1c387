"""What signing's use cases need, gathered at start-up (no aiohttp here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pyhanko_certvalidator import ValidationContext

from libs.crypto import FieldCipher
from libs.events import OutboxRelay
from libs.service.backbone import commit
from libs.tokens import JWKSCache

from .authority import Authority, current_crl, current_root_crl
from .hsm import HSM
from .settings import SigningSettings
from .tsa import TimeStampAuthority
from .verify import validation_context

T = TypeVar("T")


@dataclass(frozen=True)
class Signing:
    settings: SigningSettings
    mongo: AsyncMongoClient
    db: AsyncDatabase
    cipher: FieldCipher
    jwks: JWKSCache
    relay: OutboxRelay
    hsm: HSM
    authority: Authority
    tsa: TimeStampAuthority

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        return await commit(self.mongo, self.relay, work)

    async def crl(self) -> bytes:
        return await current_crl(self.authority, self.db)

    async def root_crl(self) -> bytes:
        return await current_root_crl(self.authority, self.db)

    async def validation_context_factory(self) -> Callable[[], ValidationContext]:
        """Fresh validation contexts (they cache state) trusting our root only, with our current CRL."""
        crls = [await self.crl(), await self.root_crl()]
        return lambda: validation_context(self.authority.root, [self.authority.issuing], crls)

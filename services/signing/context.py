"""What signing's use cases need, gathered at start-up (no aiohttp here)."""

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

from .authority import Authority, current_crl, current_root_crl
from .hsm import HSM
from .sandbox import Sandbox
from .settings import SigningSettings
from .tsa import TimeStampAuthority
from .verify import Trust

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
    # Untrusted PDFs and CMS are parsed only in its worker processes, never on the event loop.
    sandbox: Sandbox

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        return await commit(self.mongo, self.relay, work)

    async def crl(self) -> bytes:
        return await current_crl(self.authority, self.db)

    async def root_crl(self) -> bytes:
        return await current_root_crl(self.authority, self.db)

    async def trust(self) -> Trust:
        """Our root only, the issuing CA as an intermediate, both current CRLs: what verification trusts."""
        return Trust(root=self.authority.root.dump(), issuing=self.authority.issuing.dump(),
                     crls=(await self.crl(), await self.root_crl()))

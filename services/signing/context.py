"""What signing's use cases need, gathered at start-up (no aiohttp here)."""

from __future__ import annotations

from dataclasses import dataclass

from libs.backbone import ServiceContext
from libs.held_requests import HeldRequests
from libs.crypto import FieldCipher
from libs.tokens import JWKSCache

from .authority import Authority, current_crl, current_root_crl
from .hsm import HSM
from .sandbox import Sandbox
from .settings import SigningSettings
from .tsa import TimeStampAuthority
from .reports import Trust


@dataclass(frozen=True)
class Signing(ServiceContext):
    source = "/signing"

    settings: SigningSettings
    cipher: FieldCipher
    jwks: JWKSCache
    hsm: HSM
    authority: Authority
    tsa: TimeStampAuthority
    # Untrusted PDFs and CMS are parsed only in its worker processes, never on the event loop.
    sandbox: Sandbox
    # Relying parties' requests held for their citizen's answer (?wait=); None: answered at once.
    answers: HeldRequests | None = None

    async def crl(self) -> bytes:
        return await current_crl(self.authority, self.db, now=self.clock.now())

    async def root_crl(self) -> bytes:
        return await current_root_crl(self.authority, self.db, now=self.clock.now())

    async def trust(self) -> Trust:
        """Our root only, the issuing CA as an intermediate, both current CRLs: what verification trusts."""
        return Trust(root=self.authority.root.dump(), issuing=self.authority.issuing.dump(),
                     crls=(await self.crl(), await self.root_crl()))

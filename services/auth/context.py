"""What auth's use cases need, gathered once at start-up and handed to the domain (no aiohttp here)."""

from __future__ import annotations

from dataclasses import dataclass

from libs.backbone import ServiceContext
from libs.crypto.fields import FieldCipher

from libs.tokens.keystore import KeyStore, TokenSigner
from .identity.proofing import FaceMatcher
from .settings import AuthSettings


@dataclass(frozen=True)
class Auth(ServiceContext):
    source = "/auth"

    settings: AuthSettings
    keys: KeyStore
    signer: TokenSigner
    matcher: FaceMatcher

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

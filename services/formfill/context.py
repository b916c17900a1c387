"""What formfill's use cases need, gathered at start-up (no aiohttp here)."""

from __future__ import annotations

from dataclasses import dataclass

from libs.backbone import ServiceContext
from libs.held_requests import HeldRequests
from libs.crypto import FieldCipher
from libs.tokens import JWKSCache
from libs.tokens.keystore import KeyStore, TokenSigner

from .settings import FormfillSettings


@dataclass(frozen=True)
class Formfill(ServiceContext):
    source = "/formfill"

    settings: FormfillSettings
    cipher: FieldCipher
    jwks: JWKSCache
    keys: KeyStore
    signer: TokenSigner
    # Relying parties' requests held for their citizen's answer (?wait=); None: answered at once.
    answers: HeldRequests | None = None

    @property
    def release_issuer(self) -> str:
        return f"{self.settings.issuer}/v1/formfill"

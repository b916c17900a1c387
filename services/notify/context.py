"""What notify's use cases need, gathered at start-up (no aiohttp here). Shared by the API and the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass

from libs.backbone import ServiceContext
from libs.crypto import FieldCipher
from libs.tokens import JWKSCache
from libs.tokens.keystore import KeyStore, TokenSigner

from .settings import NotifySettings


@dataclass(frozen=True)
class Notify(ServiceContext):
    source = "/notify"

    settings: NotifySettings
    cipher: FieldCipher
    jwks: JWKSCache
    keys: KeyStore
    signer: TokenSigner

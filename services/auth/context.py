"""What auth's use cases need, gathered once at start-up and handed to the domain (no aiohttp here)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.backbone import ServiceContext
from libs.crypto.fields import FieldCipher
from libs.held_requests import HeldRequests

from libs.tokens.keystore import KeyStore, TokenSigner
from .approvals.stream import PromptFeed
from .identity.proofing import FaceMatcher
from .settings import AuthSettings
from .web_app import canonical_origin, rp_id

# Finishes what a prompt auth asked for itself was for, inside the decision's transaction (approvals/decisions.py):
# (auth, session, the stored prompt with the deciding device_id, "approve" | "deny") -> extras for the app's answer.
Finisher = Callable[["Auth", AsyncClientSession, dict[str, Any], str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Auth(ServiceContext):
    source = "/auth"

    settings: AuthSettings
    keys: KeyStore
    signer: TokenSigner
    matcher: FaceMatcher
    # What finishes a prompt auth asked for itself, by action ("login": the OpenID Connect login or CIBA request).
    finishers: Mapping[str, Finisher] = field(default_factory=dict)
    # Set when a change queued back-channel logout tokens (oidc/backchannel.py): the sender goes at once.
    backchannel_wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The phones' open approval streams (approvals/stream.py): what this process queues reaches them once committed.
    prompt_feed: PromptFeed | None = None
    # New phones' questions after their pairing held until it moves (devices/pairing.py `view`, ?wait=).
    pairings_held: HeldRequests | None = None

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

    @property
    def web_app_origin(self) -> str:
        """The citizen's web app's one origin (web_app.py): the origin its passkeys' client data must name."""
        return canonical_origin(self.settings.issuer, self.settings.web_app_origin)

    @property
    def passkey_rp_id(self) -> str:
        """The WebAuthn relying party id of the web app's passkeys: its origin's host."""
        return rp_id(self.web_app_origin)

"""What notify's use cases need, gathered at start-up (no aiohttp here). Shared by the API and the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from libs.backbone import ServiceContext
from libs.clock import Clock, SystemClock
from libs.crypto import FieldCipher
from libs.events import OutboxRelay
from libs.tokens import JWKSCache
from libs.tokens.keystore import KeyStore, TokenSigner

from .collections import CALLBACK_KEYS
from .settings import CALLBACK_TOKEN_TTL_S, NotifySettings


@dataclass(frozen=True)
class Notify(ServiceContext):
    source = "/notify"

    settings: NotifySettings
    cipher: FieldCipher
    jwks: JWKSCache
    keys: KeyStore
    signer: TokenSigner


async def open_context(settings: NotifySettings, mongo: AsyncMongoClient, db: AsyncDatabase, relay: OutboxRelay, http: Any,
                       clock: Clock | None = None) -> Notify:
    """The context both processes run on; `http` (an aiohttp ClientSession) fetches auth's JWKS."""
    keys = KeyStore(mongo, db, settings.keyring, max_token_lifetime_s=CALLBACK_TOKEN_TTL_S, collection=CALLBACK_KEYS)
    await keys.ensure()
    return Notify(settings=settings, mongo=mongo, db=db, relay=relay, cipher=FieldCipher(settings.keyring),
                  jwks=JWKSCache(settings.jwks_url, http, verified_cache_size=settings.token_cache_size), keys=keys, signer=TokenSigner(keys, settings.callback_issuer),
                  clock=clock or SystemClock())

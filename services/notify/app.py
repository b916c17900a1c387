"""create_app(settings) -> the notify service's aiohttp application (the API; delivery runs in dispatcher.py)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from libs.crypto import FieldCipher
from libs.events import OUTBOX_RELAY, install_consumer
from libs.service import create_service_app
from libs.revocation import install_revocations
from libs.backbone import install_backbone
from libs.service.openapi import install_openapi_route
from libs.store import DATABASE, MONGO_CLIENT
from libs.tokens import JWKSCache
from libs.tokens.keystore import KeyStore, TokenSigner

from . import metrics  # noqa: F401  (every notify metric family is exported by the API too)
from .api import CLOSING, NOTIFY, STREAM_SLOTS, routes
from .callbacks import CALLBACK_TTL_S
from .context import Notify
from .events import CONSUMED, CONSUMER_GROUP, TOPICS, handler
from .openapi import OPERATIONS
from .settings import NotifySettings
from .streams import StreamSlots
from .collections import CALLBACK_KEYS, INDEXES

SERVICE = "notify"


def create_app(settings: NotifySettings | None = None) -> web.Application:
    settings = settings or NotifySettings.from_env()
    app = create_service_app(settings.service)
    install_backbone(app, indexes=INDEXES, topics=TOPICS)
    install_revocations(app)  # tokens, devices and accounts auth revoked are refused here too
    app[CLOSING] = asyncio.Event()
    app[STREAM_SLOTS] = StreamSlots(settings.sse_max_streams_per_device)

    async def notify_context(app: web.Application):
        keys = KeyStore(app[MONGO_CLIENT], app[DATABASE], settings.keyring, max_token_lifetime_s=CALLBACK_TTL_S, collection=CALLBACK_KEYS)
        await keys.ensure()
        session = aiohttp.ClientSession()
        app[NOTIFY] = Notify(settings=settings, mongo=app[MONGO_CLIENT], db=app[DATABASE], cipher=FieldCipher(settings.keyring),
                             jwks=JWKSCache(settings.jwks_url, session), keys=keys,
                             signer=TokenSigner(keys, settings.callback_issuer), relay=app[OUTBOX_RELAY])
        yield
        await session.close()

    async def close_streams(app: web.Application) -> None:
        app[CLOSING].set()

    app.cleanup_ctx.append(notify_context)
    app.on_shutdown.append(close_streams)
    install_consumer(app, group=CONSUMER_GROUP, topics=list(CONSUMED), handler=lambda db: handler(app[NOTIFY]))
    app.add_routes(routes)
    install_openapi_route(app, OPERATIONS, title=f"Harbour ID {SERVICE}")
    return app

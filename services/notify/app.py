"""create_app(settings) -> the notify service's aiohttp application (the API; delivery runs in dispatcher.py).

Tests pass a `clock` (libs/clock.FrozenClock) to move time instead of sleeping.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from libs.backbone import install_backbone
from libs.clock import Clock
from libs.events import OUTBOX_RELAY, install_consumer
from libs.revocation import install_revocations
from libs.service import create_service_app
from libs.service.openapi import install_openapi_route
from libs.service.overload import mark_long_lived
from libs.service.tracing import client_session
from libs.store import DATABASE, MONGO_CLIENT
from libs.store.change_feed import ChangeFeed

from . import metrics  # noqa: F401  (every notify metric family is exported by the API too)
from .api import CLOSING, INBOX_FEED, NOTIFY, OPERATIONS, STREAM_SLOTS, routes
from .collections import INBOX, INDEXES
from .context import open_context
from .events import CONSUMED, CONSUMER_GROUP, TOPICS, handler
from .settings import NotifySettings
from libs.service.streams import StreamSlots

SERVICE = "notify"


def create_app(settings: NotifySettings | None = None, *, clock: Clock | None = None) -> web.Application:
    settings = settings or NotifySettings.from_env()
    app = create_service_app(settings.service)
    install_backbone(app, indexes=INDEXES, topics=TOPICS)
    install_revocations(app)  # tokens, devices and accounts auth revoked are refused here too
    app[CLOSING] = asyncio.Event()
    app[STREAM_SLOTS] = StreamSlots(settings.sse_max_streams_per_device)

    async def notify_context(app: web.Application):
        http = client_session()
        app[NOTIFY] = await open_context(settings, app[MONGO_CLIENT], app[DATABASE], app[OUTBOX_RELAY], http, clock)
        # The open inbox streams' one change stream (libs/store/change_feed.py): a new item wakes its account's streams.
        app[INBOX_FEED] = ChangeFeed(app[DATABASE][INBOX], "account_id", poll_s=settings.sse_poll_s)
        feed = asyncio.create_task(app[INBOX_FEED].run(), name="notify-inbox-feed")
        yield
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        await http.close()

    async def close_streams(app: web.Application) -> None:
        app[CLOSING].set()

    app.cleanup_ctx.append(notify_context)
    app.on_shutdown.append(close_streams)
    install_consumer(app, group=CONSUMER_GROUP, topics=list(CONSUMED), handler=lambda db: handler(app[NOTIFY]))
    app.add_routes(routes)
    # An open inbox stream waits most of its life: outside the in-flight limit and the request's database deadline.
    mark_long_lived(app, "/v1/inbox/stream")
    install_openapi_route(app, OPERATIONS, title=f"Harbour ID {SERVICE}")
    return app

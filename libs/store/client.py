"""The MongoDB client of a service: one `AsyncMongoClient` per process, owned by the app.

PyMongo's async API, the supported successor of Motor (Motor's end of life was 2026-05-14).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from libs.service.app import SETTINGS
from libs.service.health import add_readiness_check

from .indexes import IndexSpec, apply_indexes

MONGO_CLIENT = web.AppKey("mongo_client", AsyncMongoClient)
DATABASE = web.AppKey("database", AsyncDatabase)


def create_client(uri: str, *, server_selection_timeout_ms: int = 5000) -> AsyncMongoClient:
    # tz_aware: every datetime we read back is UTC-aware, never naive.
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        connectTimeoutMS=2000,
        appname="harbour-id",
    )


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")


def install_mongo(app: web.Application, indexes: Sequence[IndexSpec] = ()) -> None:
    """Give the app its database for its lifetime: connect, declare indexes, close on shutdown."""

    async def mongo_lifecycle(app: web.Application):
        settings = app[SETTINGS]
        client = create_client(settings.mongo_uri)
        app[MONGO_CLIENT] = client
        app[DATABASE] = client[settings.database]
        await apply_indexes(app[DATABASE], indexes)
        add_readiness_check(app, "mongodb", lambda: ping(client))
        yield
        await client.close()

    app.cleanup_ctx.append(mongo_lifecycle)

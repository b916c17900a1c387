"""The database in tests: a client that is always closed, and sweeps of what services stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import bson

from libs.store import create_client


@asynccontextmanager
async def mongo(uri: str) -> AsyncIterator:
    """A client of the test database, closed on leaving the block."""
    client = create_client(uri)
    try:
        yield client
    finally:
        await client.close()


async def all_documents(mongo_client, database: str) -> list[bytes]:
    """Every document of every collection of `database`, as raw BSON."""
    db = mongo_client[database]
    dumped = []
    for name in await db.list_collection_names():
        async for doc in db[name].find():
            dumped.append(bson.encode(doc))
    return dumped


async def raw_documents(platform, collections: dict[str, list[str]]) -> dict[str, list[bytes]]:
    """{"<service>.<collection>": every document of it as raw BSON}, for `{service: [collection, ...]}`."""
    async with mongo(platform.infra.mongo_uri) as client:
        return {f"{service}.{name}": [bson.encode(doc) async for doc in client[platform.database(service)][name].find()]
                for service, names in collections.items() for name in names}


async def service_documents(platform, service: str) -> list[bytes]:
    """Every document of every collection of one service's database on the platform, as raw BSON."""
    async with mongo(platform.infra.mongo_uri) as client:
        return await all_documents(client, platform.database(service))


async def platform_documents(platform) -> dict[str, list[bytes]]:
    """{database name: every document of it as raw BSON} for every database of the platform's services."""
    async with mongo(platform.infra.mongo_uri) as client:
        names = [n for n in await client.list_database_names() if n.startswith(platform.stack.config.db_prefix)]
        return {name: await all_documents(client, name) for name in names}

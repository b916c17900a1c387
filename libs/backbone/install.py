"""The backbone of a back-end service: its own database, its Kafka producer, its outbox relay.

It sits above libs/service, libs/store and libs/events (which build on the
service kit), so the kit itself stays the bottom floor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events.kafka import install_producer
from libs.events.outbox import OutboxRelay, install_outbox_relay
from libs.events.topics import Topic
from libs.store.client import install_mongo
from libs.store.indexes import IndexSpec
from libs.store.transactions import in_transaction

T = TypeVar("T")


def install_backbone(app: web.Application, *, indexes: Sequence[IndexSpec], topics: Sequence[Topic]) -> None:
    """Order matters: cleanup contexts start in this order and stop in reverse."""
    install_mongo(app, indexes)
    install_producer(app, topics)
    install_outbox_relay(app)


async def commit(mongo: AsyncMongoClient, relay: OutboxRelay, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction, then wake the outbox relay for the events it wrote."""
    result = await in_transaction(mongo, work)
    relay.notify()
    return result

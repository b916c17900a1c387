"""The backbone of a back-end service: its own database, its Kafka producer, its outbox relay.

It sits above libs/service, libs/store and libs/events (which build on the
service kit), so the kit itself stays the bottom floor.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from libs.events.kafka import install_producer
from libs.events.outbox import install_outbox_relay
from libs.events.topics import Topic
from libs.store.client import install_mongo
from libs.store.indexes import IndexSpec


def install_backbone(app: web.Application, *, indexes: Sequence[IndexSpec], topics: Sequence[Topic]) -> None:
    """Order matters: cleanup contexts start in this order and stop in reverse."""
    install_mongo(app, indexes)
    install_producer(app, topics)
    install_outbox_relay(app)

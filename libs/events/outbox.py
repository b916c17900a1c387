"""Transactional outbox: events are written with the state change, published afterwards.

A service writes its state change and `Outbox.add(...)` in one MongoDB
transaction, so an event exists if and only if the change committed. The
`OutboxRelay` publishes pending events in order and only then marks them sent.
A relay that dies between the two publishes them again on restart: delivery is
at-least-once, and consumers (libs/events/consumer.py) make the effect
exactly-once by remembering event ids.

With several replicas of a service, one relay at a time holds a lease, so
events are not published in parallel out of order.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiokafka import AIOKafkaProducer, TopicPartition
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from libs.service.app import SETTINGS
from libs.service.logging import get_logger
from libs.service.settings import KafkaSecurity
from libs.store.client import DATABASE
from libs.store.chunks import chunks
from libs.store.indexes import apply_indexes, index

from .envelope import CloudEvent
from .kafka import PRODUCER, ensure_topics
from .topics import Topic
from .metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE

OUTBOX_COLLECTION = "outbox"
LEASE_COLLECTION = "outbox_lease"
SENT_RETENTION_S = 7 * 24 * 3600

OUTBOX_INDEXES = (
    index(OUTBOX_COLLECTION, "pending", "seq"),
    # Published events are kept a week for diagnosis, then expire.
    index(OUTBOX_COLLECTION, "sent_at", expire_after_s=SENT_RETENTION_S),
)

log = get_logger("harbour.outbox")
# Strictly increasing within a process even when the clock stalls or steps back.
_last_seq = 0


def _next_seq() -> int:
    global _last_seq
    _last_seq = max(time.time_ns(), _last_seq + 1)
    return _last_seq


class Outbox:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[OUTBOX_COLLECTION]

    async def add(
        self, session: AsyncClientSession, topic: str, event: CloudEvent, *, key: str | None = None
    ) -> None:
        """Record `event` for `topic` inside the caller's transaction. `key` picks the partition (ordering)."""
        await self.collection.insert_one(_document(topic, event, key), session=session)

    async def add_many(self, session: AsyncClientSession, items: list[tuple[str, CloudEvent]]) -> None:
        """Record many (topic, event) pairs in one round trip (bulk senders: thousands of status events)."""
        if items:
            await self.collection.insert_many([_document(topic, event, None) for topic, event in items], session=session)


def _document(topic: str, event: CloudEvent, key: str | None) -> dict:
    return {
        "_id": event.id,
        "topic": topic,
        "key": key if key is not None else event.subject,
        "type": event.type,
        "value": event.to_json(),
        "created_at": datetime.now(UTC),
        "seq": _next_seq(),
        "pending": True,
    }


class OutboxRelay:
    def __init__(
        self,
        db: AsyncDatabase,
        producer: AIOKafkaProducer,
        *,
        service: str,
        batch_size: int = 200,
        poll_interval_s: float = 0.5,
        lease_ttl_s: float = 10.0,
        create_topics_at: str | None = None,
        kafka_security: KafkaSecurity | None = None,
    ) -> None:
        self.db = db
        self.collection = db[OUTBOX_COLLECTION]
        self.leases = db[LEASE_COLLECTION]
        self.producer = producer
        self.service = service
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.lease_ttl_s = lease_ttl_s
        self.owner = f"{service}:{os.getpid()}:{os.urandom(4).hex()}"
        self._wake = asyncio.Event()
        # Locally (no Strimzi), per-agency topics are created before their first event is published:
        # a broker auto-creating a topic on produce answers NotLeaderForPartition, which leaves the
        # idempotent producer out of sequence for good.
        self.create_topics_at = create_topics_at
        self.kafka_security = kafka_security
        self._ensured: set[str] = set()

    def notify(self) -> None:
        """Wake the relay now (call after a transaction that added events commits)."""
        self._wake.set()

    async def run(self) -> None:
        backoff = self.poll_interval_s
        while True:
            try:
                if await self._hold_lease():
                    published = await self.relay_once()
                    await self._update_backlog_metrics()
                    backoff = self.poll_interval_s
                    if published >= self.batch_size:
                        continue  # more waiting: do not sleep
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying", service=self.service)
                backoff = min(backoff * 2, 10.0)
            await self._sleep(backoff)

    async def relay_once(self) -> int:
        """Publish one batch of pending events in order; return how many were published."""
        pending = await (
            self.collection.find({"pending": True}).sort("seq", 1).limit(self.batch_size).to_list()
        )
        if not pending:
            return 0
        await self._ensure_agency_topics({doc["topic"] for doc in pending})
        # Enqueue the whole batch, then wait for every acknowledgement: one
        # round trip per batch, and per-key order kept by the idempotent producer.
        acks = [
            await self.producer.send(
                doc["topic"],
                value=bytes(doc["value"]),
                key=doc["key"].encode() if doc.get("key") else None,
                headers=[("ce_type", doc["type"].encode()), ("ce_id", doc["_id"].encode())],
            )
            for doc in pending
        ]
        await asyncio.gather(*acks)
        await self._mark_sent([doc["_id"] for doc in pending])
        for doc in pending:
            EVENTS_PUBLISHED.labels(self.service, doc["topic"]).inc()
        return len(pending)

    async def _ensure_agency_topics(self, topics: set[str]) -> None:
        wanted = {t for t in topics - self._ensured if t.startswith("agency.")}
        if self.create_topics_at and wanted:
            await ensure_topics(self.create_topics_at, [Topic(t, "an agency's own events", partitions=1) for t in sorted(wanted)],
                                with_dlq=False, security=self.kafka_security)
            # Publish only once the producer knows each new partition's leader.
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                await self.producer.client.force_metadata_update()
                cluster = self.producer.client.cluster
                if all(cluster.leader_for_partition(TopicPartition(t, 0)) not in (None, -1) for t in wanted):
                    break
                await asyncio.sleep(0.1)
        self._ensured |= topics

    async def _mark_sent(self, ids: list[str]) -> None:
        for chunk in chunks(ids):
            await self.collection.update_many(
                {"_id": {"$in": chunk}},
                {"$set": {"sent_at": datetime.now(UTC)}, "$unset": {"pending": ""}},
            )

    async def _hold_lease(self) -> bool:
        now = datetime.now(UTC)
        try:
            await self.leases.find_one_and_update(
                {"_id": "relay", "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + timedelta(seconds=self.lease_ttl_s)}},
                upsert=True,
            )
            return True
        except DuplicateKeyError:
            return False  # another replica's relay holds a live lease

    async def release_lease(self) -> None:
        try:
            await self.leases.delete_one({"_id": "relay", "owner": self.owner})
        except PyMongoError:
            pass  # the lease expires by itself

    async def _update_backlog_metrics(self) -> None:
        backlog = await self.collection.count_documents({"pending": True})
        OUTBOX_BACKLOG.labels(self.service).set(backlog)
        oldest = None
        if backlog:
            oldest = await self.collection.find_one({"pending": True}, sort=[("seq", 1)])
        age = (datetime.now(UTC) - oldest["created_at"]).total_seconds() if oldest else 0.0
        OUTBOX_OLDEST_AGE.labels(self.service).set(max(age, 0.0))

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()


OUTBOX_RELAY = web.AppKey("outbox_relay", OutboxRelay)


def install_outbox_relay(app: web.Application) -> None:
    """Run the app's outbox relay for its lifetime. Install after `install_mongo` and `install_producer`."""

    async def relay_lifecycle(app: web.Application):
        db = app[DATABASE]
        await apply_indexes(db, OUTBOX_INDEXES)
        settings = app[SETTINGS]
        relay = OutboxRelay(db, app[PRODUCER], service=settings.service,
                            create_topics_at=settings.kafka_bootstrap if settings.kafka_create_topics else None,
                            kafka_security=settings.kafka_security)
        app[OUTBOX_RELAY] = relay
        task = asyncio.create_task(relay.run(), name="outbox-relay")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await relay.release_lease()

    app.cleanup_ctx.append(relay_lifecycle)

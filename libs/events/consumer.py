"""Idempotent consumer: at-least-once delivery from Kafka, exactly-once effect in MongoDB.

For every message the consumer opens one transaction that inserts the event's
id into `processed_events` and runs the handler with the same session. A
redelivered event hits the unique id and is skipped; a failed handler rolls
back its writes and the marker together. Offsets are committed only after
their events are handled, at most once a second (`COMMIT_EVERY_S`), so a crash
makes the last second's events come again, deduplicated.

Failures are split in two:
- the database or broker being unreachable is nobody's fault in the message:
  the consumer waits and tries the same message again, without limit;
- anything else (a handler bug, a message it cannot accept) is retried
  `max_attempts` times with back-off, then the message goes to `<topic>.dlq`
  with the reason in its headers, and consumption goes on.
A message that is not a CloudEvent at all is dead-lettered at once.

A handler that acts on only some of the events of its topics says which with
a `wants(event) -> bool` attribute (`wants_only`): the others are committed
past without a transaction or a processed-event record (counted `ignored`),
so an event nobody here acts on costs the database nothing.

Partitions are not handed out by the broker's group protocol but by leases in
the service's database (partition_leases.py), so a process killed with SIGKILL
and restarted reads again within seconds without the broker evicting anything.
After any failed request to the broker the consumer rewinds to the offsets the
broker holds as committed: a broker that crashed may have lost its newest
records and reuses their offsets, which a consumer going on from memory would
skip. Readiness fails while the loop makes no progress (`STUCK_AFTER_S`).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from libs.background import stop_task
from libs.service.app import SETTINGS
from libs.service.logging import get_logger
from libs.service.health import add_readiness_check
from libs.service.settings import KafkaSecurity
from libs.store.client import DATABASE, MONGO_CLIENT
from libs.store.indexes import apply_indexes, index
from libs.store.transactions import in_transaction

from .envelope import CloudEvent, InvalidEnvelope
from .kafka import (PRODUCER, Publisher, connection_options, on_request_failure, pause_after_empty_fetches, start_consumer,
                    stop_consumer, topic_partitions)
from .metrics import CONSUMER_LAG, CONSUMER_LAST_PROGRESS, EVENT_HANDLER_FAILURES, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED
from .tracing import outcome, processing
from .partition_leases import LEASE_INDEXES, LEASES_COLLECTION, MEMBERS_COLLECTION, PartitionLeases
from .topics import dlq_name

Handler = Callable[[CloudEvent, AsyncClientSession], Awaitable[None]]

PROCESSED_COLLECTION = "processed_events"
PROCESSED_RETENTION_S = 7 * 24 * 3600
PROCESSED_INDEXES = (
    # Kafka retention is shorter than this, so a redelivery always finds its marker.
    index(PROCESSED_COLLECTION, "processed_at", expire_after_s=PROCESSED_RETENTION_S),
)
INFRASTRUCTURE_ERRORS = (ConnectionFailure, KafkaConnectionError)
# A consumer whose loop has not gone round for this long is stuck (a handler hanging, the database gone):
# its service reports unready, and HarbourConsumerStuck fires on its last-progress metric.
STUCK_AFTER_S = 30.0
# Offsets are committed to the broker at most this often (Kafka's own default for auto-commit is 5 s), in one
# request for every partition that moved. Each event's effect is exactly-once by its processed-event marker, not by
# the committed offset, so a crash only makes the events of the last second come again, deduplicated (or ignored
# again). Committing after every fetch was one broker request per record under load, as much work as the record.
COMMIT_EVERY_S = 1.0
# How often a consumer asks the broker for its topics' partitions (to lease partitions added since).
PARTITIONS_EVERY_S = 30.0

log = get_logger("harbour.consumer")


class _AlreadyProcessed(Exception):
    pass


class ConsumerStuck(Exception):
    pass


class EventConsumer:
    def __init__(
        self,
        *,
        service: str,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        mongo_client: AsyncMongoClient,
        db: AsyncDatabase,
        dlq_producer: Publisher,
        bootstrap: str,
        instance: str | None = None,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.2,
        security: KafkaSecurity | None = None,
        lease_ttl_s: float = 10.0,
        renew_every_s: float | None = None,
        commit_every_s: float = COMMIT_EVERY_S,
        final_commit_timeout_s: float = 5.0,
    ) -> None:
        self.service = service
        self.group = group
        self.topics = list(topics)
        self.handler = handler
        self.mongo_client = mongo_client
        self.processed = db[PROCESSED_COLLECTION]
        self.dlq_producer = dlq_producer
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        # The partitions are handed out by leases in the service's database, not by the broker's group
        # protocol (partition_leases.py says why); offsets are still committed to the broker under `group`.
        self.leases = PartitionLeases(db[LEASES_COLLECTION], db[MEMBERS_COLLECTION], group=group,
                                      owner=instance or f"{service}:{os.getpid()}:{os.urandom(4).hex()}",
                                      ttl_s=lease_ttl_s)
        # Renewed once a third of the lease has gone, as the outbox relay's and the audit appender's leases: two
        # renewals may be missed before it lapses. Four database operations each (partition_leases.py); every 2 s
        # they were ~40 % of an idle stack's database operations.
        self.renew_every_s = lease_ttl_s / 3 if renew_every_s is None else renew_every_s
        self._renewed_at = -math.inf
        self._partitions: list[TopicPartition] = []  # the topics' partitions, as the broker last said
        self._partitions_at = -math.inf  # when it said so (-inf: ask at the next renewal)
        self.last_progress = time.monotonic()
        # Set when a request to the broker failed: the broker may have restarted and lost its newest records
        # (and committed offsets), so the positions held in memory may point past what it now has.
        self._broker_disrupted = False
        self.commit_every_s = commit_every_s
        self.final_commit_timeout_s = final_commit_timeout_s
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committed_at = time.monotonic()
        self.consumer = pause_after_empty_fetches(AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=f"harbour-{service}-{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            **connection_options(security),
        ))
        on_request_failure(self.consumer._client, self._note_disruption)

    def _note_disruption(self) -> None:
        self._broker_disrupted = True

    async def start(self) -> None:
        await start_consumer(self.consumer)
        await self._renew_assignment()

    async def stop(self) -> None:
        try:
            # What this process handled is not handed to the next owner again. Bounded: with the broker gone,
            # aiokafka looks for the group coordinator for ever, and a process told to stop never would.
            await asyncio.wait_for(self.commit(), self.final_commit_timeout_s)
        except Exception:
            log.warning("final offset commit failed; the next owner reads those events again", group=self.group)
        await stop_consumer(self.consumer)
        try:
            await self.leases.release()
        except PyMongoError:
            pass  # the leases lapse by themselves

    async def run(self) -> None:
        while True:
            try:
                if time.monotonic() - self._renewed_at >= self.renew_every_s:
                    await self._renew_assignment()
                if self._broker_disrupted:
                    await self._rewind_to_committed()
                await self.consume_batch()
                self._progressed()
            except asyncio.CancelledError:
                raise
            except Exception:
                # e.g. a commit during a broker restart, the database unreachable for the leases: the
                # uncommitted messages come again and are deduplicated.
                log.exception("consumer loop error; resuming", group=self.group)
                await asyncio.sleep(1.0)

    async def _renew_assignment(self) -> None:
        # The topics' partitions, asked of the broker every PARTITIONS_EVERY_S (partitions added to a topic are leased
        # within that), and on every renewal while a topic is missing. (`consumer.topics()` on every renewal fetched
        # the whole cluster's metadata — every agency's topic — into a copy that nothing read.)
        if time.monotonic() - self._partitions_at >= PARTITIONS_EVERY_S:
            found = await topic_partitions(self.consumer, self.topics)
            self._partitions = [tp for topic in self.topics for tp in found.get(topic, ())]
            self._partitions_at = time.monotonic() if len(found) == len(self.topics) else -math.inf
        partitions = self._partitions
        held = await self.leases.claim(partitions)
        if held != self.consumer.assignment():
            await self.commit()  # before partitions change hands: commit what was handled while they were ours
            log.info("partitions assigned", group=self.group, partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in held))
            self.consumer.assign(sorted(held, key=lambda tp: (tp.topic, tp.partition)))
        self._renewed_at = time.monotonic()

    async def _rewind_to_committed(self) -> None:
        """After a broker disruption, read again from the offsets the broker itself now holds as committed.

        A broker that lost its newest records on a crash hands out their offsets again to new records; a
        consumer going on from its position in memory would skip those. The committed offsets the broker
        kept are never past its log's end, and records redelivered by rewinding are deduplicated.
        """
        for tp in self.consumer.assignment():
            committed = await self.consumer.committed(tp)
            end = (await self.consumer.end_offsets([tp]))[tp]
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, min(committed, end))
        self._uncommitted.clear()  # read again from the broker's committed offsets: nothing handled is lost
        self._broker_disrupted = False
        log.info("consumer rewound to committed offsets after a broker disruption", group=self.group)

    def _progressed(self) -> None:
        self.last_progress = time.monotonic()
        CONSUMER_LAST_PROGRESS.labels(self.service, self.group).set(time.time())

    async def ready(self, stuck_after_s: float = STUCK_AFTER_S) -> None:
        """Readiness: the loop went round recently (it does every half second when idle)."""
        idle = time.monotonic() - self.last_progress
        if idle > stuck_after_s:
            raise ConsumerStuck(f"consumer {self.group} made no progress for {idle:.0f} s")

    async def fetch(self, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The next records of the partitions this process holds, waiting at most half a second for them."""
        if not self.consumer.assignment():
            # No partition held (other replicas hold them all, or the topics are not there yet): aiokafka's getmany
            # would wait for an assignment for ever, and the leases would never be renewed to take one up when a
            # replica dies. Wait for the next renewal instead.
            await asyncio.sleep(max(0.05, self.renew_every_s - (time.monotonic() - self._renewed_at)))
            return {}
        return await self.consumer.getmany(timeout_ms=500, max_records=max_records)

    async def consume_batch(self) -> int:
        batches = await self.fetch(max_records=100)
        for tp, messages in batches.items():
            for message in messages:
                await self.handle_message(message)
            self._uncommitted[tp] = messages[-1].offset + 1
        if time.monotonic() - self._committed_at >= self.commit_every_s:
            await self.commit()
        await self._record_lag()
        return sum(len(m) for m in batches.values())

    async def commit(self) -> None:
        """Commit the offsets handled since the last commit, of the partitions still held, in one request."""
        held = self.consumer.assignment()
        offsets = {tp: offset for tp, offset in self._uncommitted.items() if tp in held}
        self._uncommitted = {}
        self._committed_at = time.monotonic()
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except BaseException:
            # Kept for the next attempt, unless newer offsets of the partition were handled meanwhile.
            self._uncommitted = offsets | self._uncommitted
            raise

    async def _record_lag(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            CONSUMER_LAG.labels(self.service, self.group, tp.topic, str(tp.partition)).set(max(0, highwater - position))

    async def handle_message(self, message: ConsumerRecord) -> str:
        """Handle one message to the end: processed, duplicate or dead_lettered."""
        try:
            event = CloudEvent.from_json(message.value or b"")
        except InvalidEnvelope as exc:
            await self._dead_letter(message, f"invalid envelope: {exc}")
            return self._count(message, "dead_lettered")
        # A consumer span, the child of the record's (or the event's) traceparent, current while the handler runs.
        with processing(message, event, self.group) as span:
            if not self._wanted(event):
                # Nothing to apply, so nothing to deduplicate: no transaction, no processed-event record.
                outcome(span, "ignored")
                return self._count(message, "ignored")
            result = await self._handle_event(message, event)
            outcome(span, result)
            return result

    def _wanted(self, event: CloudEvent) -> bool:
        """Does the handler act on this event? A handler may say so with a `wants(event)` attribute (default: all)."""
        wants = getattr(self.handler, "wants", None)
        return wants is None or wants(event)

    async def _handle_event(self, message: ConsumerRecord, event: CloudEvent) -> str:
        attempt = 0
        while True:
            try:
                await in_transaction(self.mongo_client, lambda session: self._apply(event, session))
                return self._count(message, "processed")
            except _AlreadyProcessed:
                return self._count(message, "duplicate")
            except INFRASTRUCTURE_ERRORS:
                log.warning("infrastructure unavailable; retrying event", event_id=event.id, topic=message.topic)
                await asyncio.sleep(1.0)
            except Exception as exc:
                attempt += 1
                EVENT_HANDLER_FAILURES.labels(self.service, self.group, message.topic).inc()
                log.warning(
                    "event handler failed",
                    event_id=event.id,
                    event_type=event.type,
                    attempt=attempt,
                    error=type(exc).__name__,
                    exc_info=attempt >= self.max_attempts,
                )
                if attempt >= self.max_attempts:
                    await self._dead_letter(message, f"handler failed {attempt} times: {type(exc).__name__}")
                    return self._count(message, "dead_lettered")
                await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))

    async def _apply(self, event: CloudEvent, session: AsyncClientSession) -> None:
        try:
            await self.processed.insert_one(
                {
                    "_id": f"{self.group}:{event.id}",
                    "type": event.type,
                    "processed_at": datetime.now(UTC),
                },
                session=session,
            )
        except DuplicateKeyError:
            raise _AlreadyProcessed() from None
        await self.handler(event, session)

    async def _dead_letter(self, message: ConsumerRecord, reason: str) -> None:
        headers = list(message.headers or ()) + [
            ("dlq_reason", reason[:500].encode()),
            ("dlq_original_topic", message.topic.encode()),
            ("dlq_original_partition", str(message.partition).encode()),
            ("dlq_original_offset", str(message.offset).encode()),
            ("dlq_consumer_group", self.group.encode()),
        ]
        while True:
            try:
                await self.dlq_producer.send_and_wait(
                    dlq_name(message.topic), value=message.value, key=message.key, headers=headers
                )
                break
            except KafkaError:
                log.warning("dead-letter publish failed; retrying", topic=message.topic)
                await asyncio.sleep(1.0)
        EVENTS_DEAD_LETTERED.labels(self.service, self.group, message.topic).inc()
        log.error("message dead-lettered", topic=message.topic, offset=message.offset, reason=reason)

    def _count(self, message: ConsumerRecord, outcome: str) -> str:
        self._progressed()
        EVENTS_CONSUMED.labels(self.service, self.group, message.topic, outcome).inc()
        return outcome


def wants_only(handler: Handler, wants: Callable[[CloudEvent], bool]) -> Handler:
    """`handler`, marked to act only on the events `wants` accepts; the consumer skips the rest unrecorded."""
    handler.wants = wants  # type: ignore[attr-defined]
    return handler


def install_consumer(
    app: web.Application,
    *,
    group: str,
    topics: Sequence[str],
    handler: Callable[[AsyncDatabase], Handler],
    consumer_class: type[EventConsumer] = EventConsumer,
    **options,
) -> None:
    """Run an `EventConsumer` (or a subclass, e.g. one that handles a batch per transaction) for the app's lifetime.
    Install after `install_mongo` and `install_producer`.

    `handler` is given the app's database once it exists and returns the event handler; `options` go to the
    consumer's constructor.
    """

    async def consumer_lifecycle(app: web.Application):
        settings = app[SETTINGS]
        await apply_indexes(app[DATABASE], PROCESSED_INDEXES + LEASE_INDEXES)
        consumer = consumer_class(
            service=settings.service,
            group=settings.kafka_group_prefix + group,
            topics=topics,
            handler=handler(app[DATABASE]),
            mongo_client=app[MONGO_CLIENT],
            db=app[DATABASE],
            dlq_producer=app[PRODUCER],
            bootstrap=settings.kafka_bootstrap,
            instance=settings.instance(),
            security=settings.kafka_security,
            **options,
        )
        await consumer.start()
        add_readiness_check(app, f"consumer:{group}", consumer.ready)
        task = asyncio.create_task(consumer.run(), name=f"consumer:{group}")
        yield
        await stop_task(task)
        await consumer.stop()

    app.cleanup_ctx.append(consumer_lifecycle)

"""Transactional outbox: events are written with the state change, published afterwards.

A service writes its state change and `Outbox.add(...)` in one MongoDB
transaction, so an event exists if and only if the change committed. The
`OutboxRelay` publishes pending events in order and only then marks them sent.
A relay that dies between the two publishes them again on restart: delivery is
at-least-once, and consumers (libs/events/consumer.py) make the effect
exactly-once by remembering event ids.

With several replicas of a service, one relay at a time holds a lease, so
events are not published in parallel out of order.

Only what the broker acknowledged is marked sent, record by record, with the
partition and offset the broker gave it; a failed send replaces the producer
(kafka.Publisher) and the unacknowledged events go again on the next pass.
A broker that crashes can lose records it acknowledged in the moments before
(the local one loses about a second of them on SIGKILL; a replicated Kafka
with acks=all does not). So an acknowledgement is not the end: once an event
has been sent `verify_after_s`, the relay reads its offset back from the
broker, and an event that is no longer there is published again. What awaits
its read-back is kept in the relay's memory, not written to each event; the
lease document carries the relay's `verify_from` (every event sent before it
was read back), so a relay taking the lease over reads back what its
predecessor sent since. Events are
sent as CloudEvents in the Kafka binding's structured mode (the whole event as
JSON, `content-type: application/cloudevents+json`), with the W3C
`traceparent` of the send's producer span in a header of its own (tracing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import RecordMetadata
import pymongo
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from libs.background import repeat_passes, stop_task, wake_up
from libs.service.app import SETTINGS
from libs.service.health import add_readiness_check
from libs.service.logging import get_logger
from libs.service.settings import KafkaSecurity
from libs.store.client import DATABASE
from libs.store.bulk import update_each
from libs.store.indexes import apply_indexes, index, retire_indexes
from libs.store.transactions import at_commit

from .envelope import CloudEvent
from .kafka import (PRODUCER, Publisher, Record, connection_options, ensure_topics, pause_after_empty_fetches, start_consumer,
                    stop_consumer, topic_partitions)
from .tracing import end_all, header_of, published
from .metrics import (EVENTS_PUBLISHED, EVENTS_REPUBLISHED, OUTBOX_AWAITING_READ_BACK, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE,
                      RELAY_LAST_PASS)
from .partition_leases import RELEASE_TIMEOUT_S
from .topics import AGENCY_RETENTION_MS, Topic

OUTBOX_COLLECTION = "outbox"
LEASE_COLLECTION = "outbox_lease"
SENT_RETENTION_S = 7 * 24 * 3600

CLOUDEVENTS_CONTENT_TYPE = b"application/cloudevents+json"

OUTBOX_INDEXES = (
    index(OUTBOX_COLLECTION, "pending", "seq"),
    # Published events are kept a week for diagnosis, then expire; a relay taking over finds by `sent_at` what its
    # predecessor sent and had not read back.
    index(OUTBOX_COLLECTION, "sent_at", expire_after_s=SENT_RETENTION_S),
)
# Dropped where an older version made them: `unverified` was written to every sent event and unset after its read-back
# (two writes and an index entry per event, a sixth of a login's database work on the local server).
RETIRED_OUTBOX_INDEXES = ("outbox_unverified_seq",)

log = get_logger("harbour.outbox")
# Strictly increasing within a process even when the clock stalls or steps back.
_last_seq = 0


def _next_seq() -> int:
    global _last_seq
    _last_seq = max(time.time_ns(), _last_seq + 1)
    return _last_seq


def relay_wake_name(db: AsyncDatabase) -> str:
    """The name (libs/background.py `wake_up`) of the relay loop of the outbox in `db`."""
    return f"outbox-relay:{db.name}"


class Outbox:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[OUTBOX_COLLECTION]
        self._wake_name = relay_wake_name(db)

    async def add(
        self, session: AsyncClientSession, topic: str, event: CloudEvent, *, key: str | None = None
    ) -> None:
        """Record `event` for `topic` inside the caller's transaction. `key` picks the partition (ordering)."""
        await self.collection.insert_one(_document(topic, event, key), session=session)
        self._wake_relay_at_commit()

    async def add_keyed(self, session: AsyncClientSession, items: list[tuple[str, CloudEvent, str | None]]) -> None:
        """Record (topic, event, key) triples in one insert, in this order, inside the caller's transaction."""
        if items:
            await self.collection.insert_many([_document(topic, event, key) for topic, event, key in items], session=session)
            self._wake_relay_at_commit()

    async def add_many(self, session: AsyncClientSession, items: list[tuple[str, CloudEvent]]) -> None:
        """Record many (topic, event) pairs in one round trip (bulk senders: thousands of status events)."""
        if items:
            await self.collection.insert_many([_document(topic, event, None) for topic, event in items], session=session)
            self._wake_relay_at_commit()

    def _wake_relay_at_commit(self) -> None:
        """This process's relay publishes the events once their transaction commits — whoever ran it (a request, an
        event consumer, a loop): without this, an event a consumer wrote waited for the relay's next look, up to
        IDLE_MAX_S on a quiet stack. Another process's relay finds them at its next look, as before. Written outside a
        transaction: at once."""
        at_commit(self._wake_name, lambda: wake_up(self._wake_name))


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
        # The context the event was created in: its publish span continues that trace (tracing.py).
        "traceparent": event.traceparent,
    }


# An acknowledged record the broker still has this long afterwards is taken as durable (the local broker
# writes to disk within about a second; a replicated Kafka with acks=all, at once).
VERIFY_AFTER_S = 5.0
# A relay taking over a lease with no `verify_from` (made by an older version, or cleared by a restore) reads back
# what was sent in this window; at most TAKEOVER_READ_BACK_MAX events, the newest (a broker loses its last moments).
LEGACY_READ_BACK_WINDOW_S = 600.0
TAKEOVER_READ_BACK_MAX = 20_000
# How often a busy relay reads back what it sent and measures its backlog. An idle relay skips both when it knows
# their answer: nothing sent since its last read-back found everything verified, and the last pass found no event
# pending (then the backlog is 0). Asking anyway, every poll, was a third of an idle stack's database queries.
HOUSEKEEPING_EVERY_S = 1.0
VERIFY_BATCH = 2000
READ_BACK_TIMEOUT_S = 10.0
RELAY_STUCK_AFTER_S = 30.0
# How far back in a partition the relay looks for an event whose send was interrupted.
IN_DOUBT_LOOKBACK = 5000


class PublishFailed(Exception):
    pass


@dataclass(frozen=True)
class Sent:
    """An event the broker acknowledged, awaiting its read-back."""

    sent_at: datetime
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class OffsetsRead:
    """What a partition holds between two offsets: event id per offset, and where its log begins and ends."""

    ids: dict[int, str]
    log_start: int

    def holds(self, offset: int, event_id: str) -> bool:
        # Below the log's start, retention removed the record: it was there long enough to be read.
        return offset < self.log_start or self.ids.get(offset) == event_id


class OffsetReader:
    """Reads back what the broker holds at given offsets (no consumer group: it commits nothing).

    Between reads it holds no partition: an assigned consumer's fetcher goes on fetching in the background, and
    against the local broker (which answers an empty fetch at once) that was hundreds of fetches a second, for
    ever, in every process whose relay had verified an event — a third of a core in auth and notify.
    """

    def __init__(self, bootstrap: str, client_id: str, security: KafkaSecurity | None) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.security = security
        self._consumer: AIOKafkaConsumer | None = None

    async def event_ids(self, tp: TopicPartition, first: int, last: int) -> OffsetsRead:
        consumer = await self._started()
        consumer.assign([tp])
        try:
            log_start = (await consumer.beginning_offsets([tp]))[tp]
            log_end = (await consumer.end_offsets([tp]))[tp]
            ids: dict[int, str] = {}
            stop = min(last + 1, log_end)
            if max(first, log_start) < stop:
                consumer.seek(tp, max(first, log_start))
                deadline = time.monotonic() + READ_BACK_TIMEOUT_S
                while await consumer.position(tp) < stop:
                    if time.monotonic() > deadline:
                        raise PublishFailed(f"reading back {tp.topic}:{tp.partition} timed out")
                    for message in (await consumer.getmany(tp, timeout_ms=500, max_records=1000)).get(tp, []):
                        ids[message.offset] = _event_id(message.value)
            return OffsetsRead(ids, log_start)
        finally:
            consumer.unsubscribe()  # no partition held between reads: the fetcher stops (see the class)

    async def partitions(self, topic: str) -> set[int]:
        consumer = await self._started()
        # Asked of the broker now: the reader's own view of the cluster is its start's (a topic created since missing).
        return {tp.partition for tp in (await topic_partitions(consumer, [topic])).get(topic, ())}

    async def latest_ids(self, tp: TopicPartition, count: int) -> dict[str, int]:
        """Event id → offset for the last `count` records of the partition."""
        consumer = await self._started()
        consumer.assign([tp])
        try:
            log_start = (await consumer.beginning_offsets([tp]))[tp]
            log_end = (await consumer.end_offsets([tp]))[tp]
        finally:
            consumer.unsubscribe()
        read = await self.event_ids(tp, max(log_start, log_end - count), log_end - 1)
        return {event_id: offset for offset, event_id in read.ids.items() if event_id}

    async def stop(self) -> None:
        if self._consumer is not None:
            await stop_consumer(self._consumer)
            self._consumer = None

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = pause_after_empty_fetches(AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, client_id=self.client_id, group_id=None, enable_auto_commit=False,
                **connection_options(self.security)))
            self._consumer = await start_consumer(consumer)
        return self._consumer


def _to_ms(moment: datetime) -> datetime:
    """`moment` to the millisecond: what the database keeps of a date (compared with what was read back from it)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _event_id(value: bytes | None) -> str | None:
    try:
        return json.loads(value or b"").get("id")
    except (ValueError, AttributeError):
        return None


class OutboxRelay:
    def __init__(
        self,
        db: AsyncDatabase,
        producer: Publisher,
        *,
        service: str,
        batch_size: int = 200,
        poll_interval_s: float = 0.5,
        lease_ttl_s: float = 10.0,
        verify_after_s: float = VERIFY_AFTER_S,
        create_topics_at: str | None = None,
        retention_cap_ms: int = 0,
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
        self.verify_after_s = verify_after_s
        self.owner = f"{service}:{os.getpid()}:{os.urandom(4).hex()}"
        self._wake = asyncio.Event()
        # Locally (no Strimzi), per-agency topics are created before their first event is published:
        # a broker auto-creating a topic on produce answers NotLeaderForPartition, which leaves the
        # idempotent producer out of sequence for good.
        self.create_topics_at = create_topics_at
        self.retention_cap_ms = retention_cap_ms
        self.kafka_security = kafka_security
        self._ensured: set[str] = set()
        self.reader = OffsetReader(producer.bootstrap, f"{producer.client_id}-verifier", kafka_security)
        self.last_pass = time.monotonic()
        # When this relay last renewed its lease, and last verified / measured the backlog (monotonic seconds).
        self._renewed_at = -math.inf
        self._housekept_at = -math.inf
        # Standing by: another relay held the lease when this one last looked (it looks again after `_standby_until`).
        self._standby_until = -math.inf
        self._standing_by = False
        # Events marked sent and not yet read back, by id. `_verify_from`: when nothing awaits, the moment the last
        # read-back emptied it (every event sent before was confirmed); None until this relay holds the lease and
        # has loaded what its predecessor left (`_read_back_from`, the predecessor's `verify_from`).
        self._unverified: dict[str, Sent] = {}
        self._verify_from: datetime | None = None
        self._takeover_pending = True
        self._read_back_from: datetime | None = None
        # Events this relay sent (or began to send) and has not marked sent: a failed or interrupted send may have
        # reached the broker after all. Kept here, not written to each event before its send (a write per event that
        # only a crash needed: a relay taking over — a new process or a replica — checks its whole first batch).
        self._in_flight: set[str] = set()
        self._first_batch_in_doubt = True
        self._pending_seen = 0  # events the last pass found pending (a full batch: more may be waiting)

    def notify(self) -> None:
        """Wake the relay now (call after a transaction that added events commits)."""
        self._wake.set()

    async def run(self) -> None:
        await repeat_passes(self._pass, interval_s=self.poll_interval_s, full_batch=self.batch_size, max_backoff_s=10.0,
                            wake=self._wake, wake_name=relay_wake_name(self.db), what="outbox relay pass",
                            log_fields={"service": self.service})

    async def _pass(self) -> int:
        published = 0
        if await self._hold_lease():
            # Woken after every transaction with events: the read-back (of events sent 5 s ago at the
            # earliest) and the backlog gauges need not run on each of those passes, once a second will do.
            housekeeping = time.monotonic() - self._housekept_at >= HOUSEKEEPING_EVERY_S
            try:
                published = await self.relay_once()
            except Exception:
                if housekeeping:  # the broker away: the backlog grows, and its gauges must show it
                    self._housekept_at = time.monotonic()
                    with contextlib.suppress(PyMongoError):
                        await self._update_backlog_metrics()
                raise
            if housekeeping:
                if self._unverified or self._takeover_pending:
                    await self.verify_once()
                OUTBOX_AWAITING_READ_BACK.labels(self.service).set(len(self._unverified))
                if self._pending_seen >= self.batch_size:
                    await self._update_backlog_metrics()
                else:  # the pass found fewer than a batch and published them all: none pending
                    OUTBOX_BACKLOG.labels(self.service).set(0)
                    OUTBOX_OLDEST_AGE.labels(self.service).set(0.0)
                self._housekept_at = time.monotonic()
        else:
            # Another replica relays: it reports the backlog. What this one measured while it held the lease
            # would stay as it was for ever (an age above the alert's threshold, firing for good).
            for gauge in (OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_AWAITING_READ_BACK):
                with contextlib.suppress(KeyError):
                    gauge.remove(self.service)
        self._passed()
        return published

    async def relay_once(self) -> int:
        """Publish one batch of pending events in order; return how many the broker acknowledged."""
        pending = await (
            self.collection.find({"pending": True}).sort("seq", 1).limit(self.batch_size).to_list()
        )
        self._pending_seen = len(pending)
        if not pending:
            # Nothing pending since the lease was taken: a predecessor left nothing in doubt (what it sent and did not
            # mark would still be pending), and what comes now was written after. (Looking on the broker for a new
            # relay's first events, which every start made, read each topic's last records per partition.)
            self._first_batch_in_doubt = False
            return 0
        await self._ensure_agency_topics({doc["topic"] for doc in pending})
        # An event that was on its way when a relay died or a send failed may have reached the broker after
        # all: look for it there before sending it again, so a relay never duplicates what was acknowledged.
        # A dead relay's unmarked sends are the oldest pending events, so a relay that has just taken the lease
        # over looks for its whole first batch; then only for what its own failed sends left in doubt.
        in_doubt = pending if self._first_batch_in_doubt else [doc for doc in pending if doc["_id"] in self._in_flight]
        found = await self._already_published(in_doubt) if in_doubt else {}
        self._first_batch_in_doubt = False
        await self._mark_sent([(doc, found[doc["_id"]]) for doc in in_doubt if doc["_id"] in found])
        # Looked for, and marked if found; what was in doubt and is no longer pending was marked by another relay.
        self._in_flight = set()
        pending = [doc for doc in pending if doc["_id"] not in found]
        if not pending:
            return len(found)
        self._in_flight = {doc["_id"] for doc in pending}  # on their way until the broker's acknowledgement is marked
        # The whole batch in one round trip; per-key order is kept by the idempotent producer. Each send is a
        # producer span whose context the record carries in a W3C `traceparent` header (tracing.py).
        spans = [published(doc["topic"], doc["_id"], doc["type"], doc.get("traceparent")) for doc in pending]
        try:
            results = await self.producer.send_all([
                Record(doc["topic"], bytes(doc["value"]), doc["key"].encode() if doc.get("key") else None,
                       (("content-type", CLOUDEVENTS_CONTENT_TYPE), *filter(None, [header_of(span)])))
                for doc, span in zip(pending, spans)
            ])
        except BaseException as exc:
            end_all(spans, [exc] * len(spans))
            raise
        end_all(spans, results)
        acked = [(doc, result) for doc, result in zip(pending, results) if not isinstance(result, BaseException)]
        await self._mark_sent(acked)
        self._in_flight.difference_update(doc["_id"] for doc, _ in acked)
        for doc, _ in acked:
            EVENTS_PUBLISHED.labels(self.service, doc["topic"]).inc()
        if len(acked) < len(pending):
            failure = next(r for r in results if isinstance(r, BaseException))
            raise PublishFailed(f"{len(pending) - len(acked)} of {len(pending)} events not acknowledged: {failure!r}")
        return len(acked) + len(found)

    async def _already_published(self, docs: list[dict]) -> dict[str, RecordMetadata]:
        """The events among `docs` found in the last records of their topics' partitions, with where they are."""
        wanted = {doc["_id"] for doc in docs}
        found: dict[str, RecordMetadata] = {}
        for topic in sorted({doc["topic"] for doc in docs}):
            for partition in sorted(await self.reader.partitions(topic)):
                tp = TopicPartition(topic, partition)
                for event_id, offset in (await self.reader.latest_ids(tp, IN_DOUBT_LOOKBACK)).items():
                    if event_id in wanted:
                        found[event_id] = RecordMetadata(topic, partition, tp, offset, -1, -1, -1)
        if found:
            log.info("events found on the broker before sending them again", service=self.service, found=len(found))
        return found

    async def verify_once(self, now: datetime | None = None) -> tuple[int, int]:
        """Read back events sent at least `verify_after_s` ago; publish again those the broker lost.

        Returns (confirmed, lost)."""
        now = _to_ms(now or datetime.now(UTC))
        if self._takeover_pending:
            await self._load_unverified(now)
        before = now - timedelta(seconds=self.verify_after_s)
        due = [(event_id, sent) for event_id, sent in self._unverified.items() if sent.sent_at <= before][:VERIFY_BATCH]
        if not due:
            return 0, 0
        by_partition: dict[TopicPartition, list[tuple[str, Sent]]] = {}
        for event_id, sent in due:
            by_partition.setdefault(TopicPartition(sent.topic, sent.partition), []).append((event_id, sent))
        confirmed: list[str] = []
        lost: list[tuple[str, Sent]] = []
        for tp, items in by_partition.items():
            found = await self.reader.event_ids(tp, min(s.offset for _, s in items), max(s.offset for _, s in items))
            for event_id, sent in items:
                if found.holds(sent.offset, event_id):
                    confirmed.append(event_id)
                else:
                    lost.append((event_id, sent))
        # (`unverified` is unset for events an older version marked.)
        await update_each(self.collection, (event_id for event_id, _ in lost),
                          {"$set": {"pending": True}, "$unset": {"unverified": "", "sent_at": "", "partition": "", "offset": ""}})
        for event_id, sent in lost:
            EVENTS_REPUBLISHED.labels(self.service, sent.topic).inc()
        for event_id, _ in due:
            del self._unverified[event_id]
        if not self._unverified:
            self._verify_from = now
        if lost:
            log.warning("the broker lost acknowledged events; publishing them again", service=self.service, lost=len(lost))
            self.notify()
        return len(confirmed), len(lost)

    @property
    def awaiting_read_back(self) -> int:
        """How many acknowledged events this relay has yet to read back."""
        return len(self._unverified)

    def verify_from(self) -> datetime | None:
        """Every event sent before this moment has been read back (as far as this relay knows), or None — also until
        it has loaded what its predecessor left to read back (its own sends alone would hide those)."""
        if self._takeover_pending:
            return None
        if self._unverified:
            return min(sent.sent_at for sent in self._unverified.values())
        return self._verify_from

    async def _load_unverified(self, now: datetime) -> None:
        """On taking the lease: what the previous relay marked sent since its `verify_from`, to be read back."""
        since = self._read_back_from or now - timedelta(seconds=LEGACY_READ_BACK_WINDOW_S)
        docs = await (self.collection.find({"sent_at": {"$gte": since}}, {"topic": 1, "partition": 1, "offset": 1, "sent_at": 1})
                      .sort("sent_at", -1).limit(TAKEOVER_READ_BACK_MAX).to_list())
        for doc in docs:  # (marked sent in one update with its partition and offset; dates read back UTC-aware)
            self._unverified.setdefault(doc["_id"], Sent(doc["sent_at"], doc["topic"], doc["partition"], doc["offset"]))
        self._verify_from = now
        self._takeover_pending = False

    async def ready(self, stuck_after_s: float = RELAY_STUCK_AFTER_S) -> None:
        """Readiness: the relay completed a pass recently (it fails every pass while it cannot publish)."""
        idle = time.monotonic() - self.last_pass
        if idle > stuck_after_s:
            raise PublishFailed(f"the outbox relay has not completed a pass for {idle:.0f} s")

    def _passed(self) -> None:
        self.last_pass = time.monotonic()
        RELAY_LAST_PASS.labels(self.service).set(time.time())

    async def _ensure_agency_topics(self, topics: set[str]) -> None:
        wanted = {t for t in topics - self._ensured if t.startswith("agency.")}
        if self.create_topics_at and wanted:
            await ensure_topics(self.create_topics_at, [Topic(t, "an agency's own events", partitions=1,
                                                              retention_ms=AGENCY_RETENTION_MS) for t in sorted(wanted)],
                                with_dlq=False, security=self.kafka_security, retention_cap_ms=self.retention_cap_ms)
            # Publish only once the producer knows each new partition's leader.
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                await self.producer.client.force_metadata_update()
                cluster = self.producer.client.cluster
                if all(cluster.leader_for_partition(TopicPartition(t, 0)) not in (None, -1) for t in wanted):
                    break
                await asyncio.sleep(0.1)
        self._ensured |= topics

    async def _mark_sent(self, acked: list[tuple[dict, RecordMetadata]]) -> None:
        if not acked:
            return
        now = _to_ms(datetime.now(UTC))  # as the database keeps it: a successor finds these by `sent_at >= verify_from`
        await self.collection.bulk_write([
            UpdateOne({"_id": doc["_id"]}, {"$set": {"sent_at": now, "partition": meta.partition, "offset": meta.offset},
                                            "$unset": {"pending": ""}})
            for doc, meta in acked
        ], ordered=False)
        for doc, meta in acked:
            self._unverified[doc["_id"]] = Sent(now, doc["topic"], meta.partition, meta.offset)

    async def _hold_lease(self) -> bool:
        """Hold the relay's lease: renewed once a third of its time has gone, not on every pass (one write by _id)."""
        if time.monotonic() - self._renewed_at < self.lease_ttl_s / 3:
            return True
        if time.monotonic() < self._standby_until:
            return False  # another relay held it a moment ago: look again later, not on every pass
        started = time.monotonic()
        now = datetime.now(UTC)
        if self._standing_by:
            # One read says whether the other relay still holds it (trying to renew, take over and create it: three).
            lease = await self.leases.find_one({"_id": "relay"}, {"owner": 1, "expires_at": 1})
            if lease is not None and lease.get("owner") != self.owner and lease["expires_at"] >= now:
                return self._stand_by()
        held = {"$set": {"owner": self.owner, "expires_at": now + timedelta(seconds=self.lease_ttl_s)}}
        if (verify_from := self.verify_from()) is not None:
            held["$set"]["verify_from"] = verify_from  # for a successor: what it must read back (renewals write it)
        renewed = await self.leases.update_one({"_id": "relay", "owner": self.owner}, held)
        if renewed.matched_count == 0:
            # Not ours (yet): take it over if it lapsed, or create it the first time. Taking it over: another relay may
            # have sent events and not marked them (the first batch is looked for on the broker), or marked them and
            # not read them back (read back from its `verify_from`).
            self._lease_lost()
            previous = await self.leases.find_one_and_update({"_id": "relay", "expires_at": {"$lt": now}}, held)
            if previous is None:
                try:
                    await self.leases.insert_one({"_id": "relay", **held["$set"]})
                except DuplicateKeyError:
                    return self._stand_by()  # another replica's relay holds a live lease
            else:
                self._read_back_from = previous.get("verify_from")
        self._renewed_at, self._standing_by = started, False
        return True

    def _stand_by(self) -> bool:
        self._renewed_at, self._standing_by = -math.inf, True
        self._standby_until = time.monotonic() + min(self.poll_interval_s * 4, self.lease_ttl_s / 3)
        return False

    def _lease_lost(self) -> None:
        """Whatever this relay knew of sends in flight and read-backs due is its successor's now: start over."""
        self._first_batch_in_doubt = self._takeover_pending = True
        self._in_flight, self._unverified, self._verify_from, self._read_back_from = set(), {}, None, None

    async def release_lease(self) -> None:
        """Let the next relay take over at once, telling it where to read back from (the lease document stays).
        Bounded, as every lease given back at a stop (partition_leases.RELEASE_TIMEOUT_S): otherwise it lapses."""
        self._renewed_at = -math.inf
        released: dict = {"expires_at": datetime.now(UTC) - timedelta(milliseconds=1)}
        if (verify_from := self.verify_from()) is not None:
            released["verify_from"] = verify_from
        try:
            with pymongo.timeout(RELEASE_TIMEOUT_S):
                await self.leases.update_one({"_id": "relay", "owner": self.owner}, {"$set": released})
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


OUTBOX_RELAY = web.AppKey("outbox_relay", OutboxRelay)


def install_outbox_relay(app: web.Application) -> None:
    """Run the app's outbox relay for its lifetime. Install after `install_mongo` and `install_producer`."""

    async def relay_lifecycle(app: web.Application):
        db = app[DATABASE]
        await apply_indexes(db, OUTBOX_INDEXES)
        await retire_indexes(db, OUTBOX_COLLECTION, RETIRED_OUTBOX_INDEXES)
        settings = app[SETTINGS]
        relay = OutboxRelay(db, app[PRODUCER], service=settings.service,
                            create_topics_at=settings.kafka_bootstrap if settings.kafka_create_topics else None,
                            retention_cap_ms=settings.kafka_retention_cap_ms, kafka_security=settings.kafka_security)
        app[OUTBOX_RELAY] = relay
        add_readiness_check(app, "outbox-relay", relay.ready)
        task = asyncio.create_task(relay.run(), name="outbox-relay")
        yield
        await stop_task(task)
        await relay.release_lease()
        await relay.reader.stop()

    app.cleanup_ctx.append(relay_lifecycle)

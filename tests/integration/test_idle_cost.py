"""What an idle service asks the database and the broker for, and what it must still see.

An idle stack polled the database ~31 times a second and the broker's whole metadata every few seconds per
consumer: a tenth of the core a one-core benchmark pins the stack to (docs/operations.md, "An idle stack's own
CPU"). Each test here holds one of the cuts to what it saves, and to what it must not lose. Real broker, real
database; faults are injected into the real objects (a publisher whose sends fail, as when the broker is away).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError
from pymongo import monitoring
from prometheus_client import REGISTRY

from libs.events import CloudEvent, EventConsumer, Outbox, OutboxRelay, Publisher
from libs.events.kafka import ensure_topics
from libs.events.outbox import LEASE_COLLECTION, OUTBOX_COLLECTION, OUTBOX_INDEXES
from libs.events.topics import Topic
from libs.store import apply_indexes, create_client, in_transaction
from services.signing.ledger.consumer import AuditConsumer

from ..support.broker import read_all
from ..support.polling import eventually

pytestmark = pytest.mark.integration


class OutboxCommands(monitoring.CommandListener):
    """The commands sent about the outbox collection (find, aggregate for a count...), with their filters."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == OUTBOX_COLLECTION and event.command_name in ("find", "aggregate", "count"):
            self.seen.append((event.command_name, event.command.get("filter") or event.command.get("pipeline")))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


async def _write_events(client, db, topic: str, n: int) -> None:
    events = [CloudEvent(source="/idle", type="test.idle", subject=f"s-{i}", data={"n": i}) for i in range(n)]
    await in_transaction(client, lambda session: Outbox(db).add_many(session, [(topic, e) for e in events]))


def _gauge(name: str, service: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": service})


async def _one_partition(infra, name: str, **client_options):
    """A new topic of one partition, a database, a consumer group name and a started publisher."""
    topic = Topic(f"test.{uuid.uuid4().hex[:10]}.events", name, partitions=1)
    await ensure_topics(infra.kafka_bootstrap, [topic])
    client = create_client(infra.mongo_uri, **client_options)
    publisher = Publisher(infra.kafka_bootstrap, name)
    await publisher.start()
    suffix = uuid.uuid4().hex[:6]
    return topic, client, client[f"{name.replace('-', '_')}_{suffix}"], f"{name}-{suffix}", publisher


async def _broker_away(records):
    raise KafkaConnectionError("the broker is away")


async def test_an_idle_relay_asks_only_for_pending_events_and_still_reads_back_what_it_sends(infra):
    commands = OutboxCommands()
    topic, client, db, _, publisher = await _one_partition(infra, "idle-relay", event_listeners=[commands])
    await apply_indexes(db, OUTBOX_INDEXES)
    relay = OutboxRelay(db, publisher, service="idle-relay", verify_after_s=0)
    try:
        # The first: it takes the lease and asks what an earlier relay sent and had not read back.
        await relay._pass()
        assert any(name == "find" and "sent_at" in spec for name, spec in commands.seen), commands.seen

        for _ in range(3):  # idle passes, housekeeping due each time
            commands.seen.clear()
            relay._housekept_at = float("-inf")
            await relay._pass()
            # Only the question that finds new work: no read-back query, no backlog count (both were asked each time).
            assert commands.seen == [("find", {"pending": True})], commands.seen
        assert _gauge("harbour_outbox_backlog", "idle-relay") == 0

        # Events sent: the same pass's housekeeping reads them back from the broker and confirms them — from what the
        # relay remembers sending, with no query — then the relay is quiet again.
        await _write_events(client, db, topic.name, 3)
        commands.seen.clear()
        relay._housekept_at = float("-inf")
        assert await relay._pass() == 3
        assert commands.seen == [("find", {"pending": True})], commands.seen
        assert relay.awaiting_read_back == 0
        commands.seen.clear()
        relay._housekept_at = float("-inf")
        await relay._pass()
        assert commands.seen == [("find", {"pending": True})], commands.seen
    finally:
        await relay.reader.stop()
        await publisher.stop()
        await client.drop_database(db.name)
        await client.close()


async def test_the_backlog_gauges_grow_while_the_broker_refuses_the_events(infra):
    """harbour_outbox_backlog and the oldest event's age are what the HarbourOutboxBacklog alert watches: they were only
    measured after a successful pass, so while the broker was away they kept their last value (0) and never fired."""
    topic, client, db, _, publisher = await _one_partition(infra, "away-relay")
    await apply_indexes(db, OUTBOX_INDEXES)
    relay = OutboxRelay(db, publisher, service="away-relay")
    send_all = publisher.send_all
    try:
        await relay._pass()
        assert _gauge("harbour_outbox_backlog", "away-relay") == 0
        await _write_events(client, db, topic.name, 4)
        publisher.send_all = _broker_away
        relay._housekept_at = float("-inf")
        with pytest.raises(KafkaConnectionError):
            await relay._pass()
        assert _gauge("harbour_outbox_backlog", "away-relay") == 4
        assert _gauge("harbour_outbox_oldest_unsent_age_seconds", "away-relay") >= 0
        oldest_then = _gauge("harbour_outbox_oldest_unsent_age_seconds", "away-relay")
        await asyncio.sleep(0.2)  # the age must grow with time while nothing goes out
        relay._housekept_at = float("-inf")
        with pytest.raises(KafkaConnectionError):
            await relay._pass()
        assert _gauge("harbour_outbox_oldest_unsent_age_seconds", "away-relay") > oldest_then

        publisher.send_all = send_all  # the broker back: everything goes out, the gauges fall to 0
        relay._housekept_at = float("-inf")
        assert await relay._pass() == 4
        assert _gauge("harbour_outbox_backlog", "away-relay") == 0
        assert _gauge("harbour_outbox_oldest_unsent_age_seconds", "away-relay") == 0
    finally:
        await relay.reader.stop()
        await publisher.stop()
        await client.drop_database(db.name)
        await client.close()


def _count_calls(obj, name: str) -> dict[str, int]:
    counts = {"n": 0}
    original = getattr(obj, name)

    async def counting(*args, **kwargs):
        counts["n"] += 1
        return await original(*args, **kwargs)

    setattr(obj, name, counting)
    return counts


async def test_renewing_its_leases_a_consumer_does_not_fetch_the_whole_clusters_metadata_each_time(infra):
    """`consumer.topics()` on every renewal (every 3.3 s per consumer) fetched every topic's metadata — every agency's
    topic with it — into a copy nothing read; the partitions are now asked for every 30 s."""
    topic = Topic(f"test.{uuid.uuid4().hex[:10]}.events", "renewals", partitions=2)
    await ensure_topics(infra.kafka_bootstrap, [topic])
    client = create_client(infra.mongo_uri)
    publisher = Publisher(infra.kafka_bootstrap, "renewals")
    await publisher.start()

    async def handler(event, session) -> None:
        pass

    consumer = EventConsumer(service="renewals", group=f"renewals-{uuid.uuid4().hex[:6]}", topics=[topic.name],
                             handler=handler, mongo_client=client, db=client[f"renewals_{uuid.uuid4().hex[:6]}"],
                             dlq_producer=publisher, bootstrap=infra.kafka_bootstrap)
    await consumer.start()
    try:
        assert len(consumer.consumer.assignment()) == 2
        metadata = _count_calls(consumer.consumer._client, "fetch_all_metadata")
        for _ in range(5):
            await consumer._renew_assignment()
        assert metadata["n"] == 0
        assert len(consumer.consumer.assignment()) == 2
    finally:
        await consumer.stop()
        await publisher.stop()
        await client.close()


async def test_a_consumer_started_before_its_topic_exists_reads_it_once_it_does(infra):
    """A topic created after the consumer started (Strimzi creating it late, an operator's order of steps): its
    partitions are looked for on every renewal until found, then its events are read."""
    topic = Topic(f"test.{uuid.uuid4().hex[:10]}.events", "created late", partitions=2)
    client = create_client(infra.mongo_uri)
    publisher = Publisher(infra.kafka_bootstrap, "late-topic")
    await publisher.start()
    seen: list[str] = []

    async def handler(event, session) -> None:
        seen.append(event.id)

    consumer = EventConsumer(service="late-topic", group=f"late-{uuid.uuid4().hex[:6]}", topics=[topic.name],
                             handler=handler, mongo_client=client, db=client[f"late_{uuid.uuid4().hex[:6]}"],
                             dlq_producer=publisher, bootstrap=infra.kafka_bootstrap, renew_every_s=0.2)
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    try:
        assert consumer.consumer.assignment() == set()
        await ensure_topics(infra.kafka_bootstrap, [topic])
        event = CloudEvent(source="/late", type="test.late", subject="k", data={})
        await publisher.send_and_wait(topic.name, event.to_json(), key=b"k")
        assert await eventually(lambda: _seen(seen, event.id), timeout_s=20)
        assert len(consumer.consumer.assignment()) == 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await consumer.stop()
        await publisher.stop()
        await client.close()


async def test_a_replica_holding_no_partition_takes_them_over_when_the_holder_dies(infra):
    """Two replicas, one partition: the second holds nothing. It waited in aiokafka's getmany for an assignment that
    never came, so it never renewed its leases again — and when the first replica died, nobody read the topic."""
    topic, client, db, group, publisher = await _one_partition(infra, "failover")
    seen: dict[str, list[str]] = {"first": [], "second": []}

    def replica(name: str) -> EventConsumer:
        async def handler(event, session) -> None:
            seen[name].append(event.id)

        return EventConsumer(service="failover", group=group, topics=[topic.name], handler=handler, mongo_client=client,
                             db=db, dlq_producer=publisher, bootstrap=infra.kafka_bootstrap, instance=name,
                             lease_ttl_s=1.5)

    first, second = replica("first"), replica("second")
    await first.start()
    await second.start()
    tasks = {name: asyncio.create_task(c.run()) for name, c in (("first", first), ("second", second))}
    try:
        assert len(first.consumer.assignment()) == 1 and second.consumer.assignment() == set()
        before = CloudEvent(source="/failover", type="test.failover", subject="k", data={})
        await publisher.send_and_wait(topic.name, before.to_json(), key=b"k")
        assert await eventually(lambda: _seen(seen["first"], before.id), timeout_s=20)

        # The first replica dies (SIGKILL: no release, its leases lapse); the second must take the partition up.
        tasks["first"].cancel()
        await asyncio.gather(tasks["first"], return_exceptions=True)
        after = CloudEvent(source="/failover", type="test.failover", subject="k", data={})
        await publisher.send_and_wait(topic.name, after.to_json(), key=b"k")
        assert await eventually(lambda: _seen(seen["second"], after.id), timeout_s=20)
        assert len(second.consumer.assignment()) == 1
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await second.stop()
        await first.stop()  # its leases had lapsed: releasing them changes nothing
        await publisher.stop()
        await client.close()


async def test_a_signing_audit_ledger_replica_holding_nothing_takes_the_partition_over_when_the_holder_dies(infra):
    """signing's audit ledger consumer fetches its own way (a partition's records in one transaction): the same wait
    for an assignment that never came, the same takeover now."""
    topic, client, db, group, publisher = await _one_partition(infra, "audit-failover")

    async def handler(event, session) -> None:
        pass

    def replica(name: str) -> AuditConsumer:
        return AuditConsumer(db=db, service="audit-failover", group=group, topics=[topic.name], handler=handler,
                             mongo_client=client, dlq_producer=publisher, bootstrap=infra.kafka_bootstrap,
                             instance=name, lease_ttl_s=1.5)

    first, second = replica("first"), replica("second")
    await first.start()
    await second.start()
    tasks = {"first": asyncio.create_task(first.run()), "second": asyncio.create_task(second.run())}
    try:
        assert len(first.consumer.assignment()) == 1 and second.consumer.assignment() == set()
        tasks["first"].cancel()  # killed: its lease lapses after 1.5 s
        await asyncio.gather(tasks["first"], return_exceptions=True)
        assert await eventually(lambda: len(second.consumer.assignment()) == 1, timeout_s=20)
        assert not tasks["second"].done()
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await second.stop()
        await first.stop()
        await publisher.stop()
        await client.close()


async def _seen(seen: list[str], event_id: str) -> bool:
    return event_id in seen


class LeaseCommands(monitoring.CommandListener):
    """The names of the commands sent about the relay's lease collection."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == LEASE_COLLECTION:
            self.seen.append(event.command_name)

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


async def test_a_relay_standing_by_reads_the_lease_once_per_look_and_takes_it_when_released(infra):
    """With several replicas, all but one relay stand by. Each look used to be three writes that fail (renew what is
    not its own, take over what has not lapsed, create what exists); now one read of the lease, and the attempt to
    take it only once it has lapsed or been released."""
    leases = LeaseCommands()
    topic, client, db, _, publisher = await _one_partition(infra, "standby", event_listeners=[leases])
    await apply_indexes(db, OUTBOX_INDEXES)
    holder = OutboxRelay(db, publisher, service="standby-holder")
    standby = OutboxRelay(db, publisher, service="standby-waiting")
    try:
        assert await holder._hold_lease()
        assert not await standby._hold_lease()  # the first look: it tried to take it
        for _ in range(3):
            leases.seen.clear()
            standby._standby_until = float("-inf")  # its next look is due
            assert not await standby._hold_lease()
            assert leases.seen == ["find"], leases.seen

        await holder.release_lease()  # a replica stopping: the next relay takes over at once
        leases.seen.clear()
        standby._standby_until = float("-inf")
        assert await standby._hold_lease()
        assert leases.seen == ["find", "update", "findAndModify"], leases.seen
        holder._renewed_at = float("-inf")
        assert not await holder._hold_lease()  # the roles swapped
    finally:
        await holder.reader.stop()
        await standby.reader.stop()
        await publisher.stop()
        await client.drop_database(db.name)
        await client.close()


async def test_a_replica_that_lost_the_relay_lease_stops_reporting_the_backlog_it_measured(infra):
    """Two replicas' relays share one outbox; the one without the lease publishes nothing and measures nothing. What
    it measured while it held the lease stayed exported for ever — an oldest-event age from an outage kept the
    HarbourOutboxBacklog alert firing after the other replica had published everything."""
    topic, client, db, _, publisher = await _one_partition(infra, "handover")
    await apply_indexes(db, OUTBOX_INDEXES)
    first = OutboxRelay(db, publisher, service="handover-first", lease_ttl_s=1)
    second = OutboxRelay(db, publisher, service="handover-second", lease_ttl_s=1)
    send_all = publisher.send_all
    try:
        await _write_events(client, db, topic.name, 2)
        publisher.send_all = _broker_away
        with pytest.raises(KafkaConnectionError):
            await first._pass()
        assert _gauge("harbour_outbox_backlog", "handover-first") == 2
        publisher.send_all = send_all

        # The first replica stalls past its lease; the second takes the relay over and publishes.
        assert await eventually(second._hold_lease, timeout_s=10)
        assert await second._pass() == 2
        assert _gauge("harbour_outbox_backlog", "handover-second") == 0
        await first._pass()  # it finds the lease taken: it stands by
        assert _gauge("harbour_outbox_backlog", "handover-first") is None
        assert _gauge("harbour_outbox_oldest_unsent_age_seconds", "handover-first") is None
    finally:
        await first.reader.stop()
        await second.reader.stop()
        await publisher.stop()
        await client.drop_database(db.name)
        await client.close()


async def test_an_event_written_in_any_transaction_wakes_the_relay_at_its_commit(infra):
    # A consumer's handler writes events in the consumer's own transaction (not a service's `transaction`, which used
    # to wake the relay itself): the event waited for the relay's next look, up to IDLE_MAX_S on a quiet stack. Now
    # the outbox wakes this process's relay when the transaction commits — not before (a relay woken then would find
    # nothing and sleep again), and not for one that aborted. The relay here looks by itself only every 60 s.
    topic, client, db, _, publisher = await _one_partition(infra, "woken-relay")
    await apply_indexes(db, OUTBOX_INDEXES)
    relay = OutboxRelay(db, publisher, service="woken-relay", poll_interval_s=60)
    loop = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: relay._renewed_at > 0, timeout_s=10)  # its first pass is done: it waits 60 s now
        passes = 0
        counted = relay._pass

        async def counting_pass() -> int:
            nonlocal passes
            passes += 1
            return await counted()

        relay._pass = counting_pass  # the loop looks the pass up on each round
        event = CloudEvent(source="/idle", type="test.woken", subject="s-1", data={})

        async def handler_like(session) -> None:
            await Outbox(db).add(session, topic.name, event)
            await asyncio.sleep(0.3)  # still uncommitted: the relay must not have been woken yet
            assert passes == 0

        await in_transaction(client, handler_like)
        [message] = await read_all(infra.kafka_bootstrap, topic.name, 1, timeout_s=10)
        assert CloudEvent.from_json(message.value).id == event.id

        async def aborted(session) -> None:
            await Outbox(db).add(session, topic.name, CloudEvent(source="/idle", type="test.woken", subject="s-2", data={}))
            raise KeyError("aborted")

        before = passes
        with pytest.raises(KeyError):
            await in_transaction(client, aborted)
        await asyncio.sleep(0.3)
        assert passes == before
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await relay.reader.stop()
        await publisher.stop()
        await client.drop_database(db.name)
        await client.close()

"""Must-show 1–3 of the foundation: transactional outbox, idempotent consumer, dead letters.

Everything here runs against the real Kafka-protocol broker and
MongoDB-protocol server, through two service apps built with the real kit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from libs.events import CloudEvent, EventConsumer, Outbox, OutboxRelay, Publisher, install_consumer
from libs.events.outbox import OUTBOX_COLLECTION, OUTBOX_INDEXES, OUTBOX_RELAY, OffsetReader, PublishFailed
from libs.service import create_service_app, parse_body
from libs.backbone import install_backbone
from libs.store import DATABASE, MONGO_CLIENT, apply_indexes, create_client, in_transaction

from ..support.broker import all_messages, new_topic, read_all
from ..support.database import CommandCounter
from ..support.polling import eventually

pytestmark = pytest.mark.integration


class NewAccount(BaseModel):
    handle: str = Field(min_length=1, max_length=40)
    fail_after_event: bool = False


def writer_app(settings, topic):
    """A service that creates accounts and announces each in the same transaction."""
    app = create_service_app(settings)
    install_backbone(app, indexes=(), topics=(topic,))

    async def create_account(request: web.Request) -> web.Response:
        body = await parse_body(request, NewAccount)
        account_id = str(uuid.uuid4())
        event = CloudEvent(source="/writer", type="account.created", subject=account_id, data={"handle": body.handle})
        db = request.app[DATABASE]

        async def work(session):
            await db.accounts.insert_one({"_id": account_id, "handle": body.handle}, session=session)
            await Outbox(db).add(session, topic.name, event)
            if body.fail_after_event:
                raise RuntimeError("the transaction fails after the event was added")

        try:
            await in_transaction(request.app[MONGO_CLIENT], work)
        except RuntimeError:
            return web.json_response({"rolled_back": True}, status=409)
        request.app[OUTBOX_RELAY].notify()
        return web.json_response({"id": account_id, "event_id": event.id}, status=201)

    app.router.add_post("/accounts", create_account)
    return app


def account_projector(database: str):
    """Another service's projection: one document per account, and how often it was applied."""

    async def project_account(event: CloudEvent, session) -> None:
        await session.client[database].account_projection.update_one(
            {"_id": event.subject},
            {"$set": {"handle": event.data["handle"]}, "$inc": {"applied": 1}},
            upsert=True,
            session=session,
        )

    return project_account


def reader_app(settings, topic):
    app = create_service_app(settings)
    install_backbone(app, indexes=(), topics=(topic,))
    install_consumer(
        app, group=f"{settings.service}-accounts", topics=[topic.name], handler=lambda db: account_projector(settings.database)
    )
    return app


async def test_state_change_and_event_commit_together_and_reach_another_service(infra):
    topic = await new_topic(infra.kafka_bootstrap)
    writer = writer_app(infra.settings("writer"), topic)
    reader = reader_app(infra.settings("reader"), topic)
    async with TestClient(TestServer(writer)) as w, TestClient(TestServer(reader)) as r:
        created = await w.post("/accounts", json={"handle": "alice"})
        assert created.status == 201
        account = await created.json()

        # A transaction that fails leaves neither the state change nor the event.
        failed = await w.post("/accounts", json={"handle": "mallory", "fail_after_event": True})
        assert failed.status == 409
        writer_db = writer[DATABASE]
        assert await writer_db.accounts.count_documents({"handle": "mallory"}) == 0
        assert await writer_db[OUTBOX_COLLECTION].count_documents({}) == 1

        # The relay publishes; the other service's consumer records the account.
        projection = reader[DATABASE].account_projection
        doc = await eventually(lambda: projection.find_one({"_id": account["id"]}))
        assert doc == {"_id": account["id"], "handle": "alice", "applied": 1}
        sent = await eventually(lambda: writer_db[OUTBOX_COLLECTION].find_one({"_id": account["event_id"], "sent_at": {"$exists": True}}))
        assert "pending" not in sent

        # The published message is a CloudEvent keyed by its subject.
        [message] = await read_all(infra.kafka_bootstrap, topic.name, 1)
        event = CloudEvent.from_json(message.value)
        assert (event.id, event.type, event.subject) == (account["event_id"], "account.created", account["id"])
        assert message.key == account["id"].encode()
        assert await projection.count_documents({}) == 1  # mallory never arrived

        # The consumer reports its lag per partition; everything is handled, so it is zero.
        def lag_samples():
            return [
                sample.value
                for metric in REGISTRY.collect() if metric.name == "harbour_consumer_lag"
                for sample in metric.samples if sample.labels.get("group") == "reader-accounts" and sample.labels["topic"] == topic.name
            ]

        assert await eventually(lambda: lag_samples() and all(v == 0 for v in lag_samples()))

        # Ready means the database and the broker both answer, and the relay and the consumer go round.
        ready = await (await r.get("/readyz")).json()
        assert ready == {"status": "ready", "checks": {"mongodb": "ok", "kafka": "ok", "outbox-relay": "ok", "consumer:reader-accounts": "ok"}}
        assert REGISTRY.get_sample_value("harbour_events_published_total", {"service": "writer", "topic": topic.name}) >= 1


CRASHING_RELAY = """
import asyncio, os, signal, sys
from libs.events import OutboxRelay, Publisher
from libs.store import create_client

async def main(uri, database, bootstrap):
    producer = Publisher(bootstrap, "crashing-relay")
    await producer.start()
    relay = OutboxRelay(create_client(uri)[database], producer, service="crashing", lease_ttl_s=1)

    async def die_before_marking(acked):
        if acked:
            os.kill(os.getpid(), signal.SIGKILL)  # the relay dies: acknowledged, not marked sent

    relay._mark_sent = die_before_marking
    await relay.relay_once()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_relay_crash_between_publish_and_mark_gives_each_event_once(infra, tmp_path):
    topic = await new_topic(infra.kafka_bootstrap)
    writer_settings = infra.settings("crash-writer")
    reader_settings = infra.settings("crash-reader")
    client = create_client(infra.mongo_uri)
    writer_db = client[writer_settings.database]
    await apply_indexes(writer_db, OUTBOX_INDEXES)
    events = [CloudEvent(source="/writer", type="account.created", subject=f"acct-{i}", data={"handle": f"h{i}"}) for i in range(5)]

    async def write_all(session):
        for event in events:
            await writer_db.accounts.insert_one({"_id": event.subject}, session=session)
            await Outbox(writer_db).add(session, topic.name, event)

    await in_transaction(client, write_all)

    # 1. A relay process publishes the batch and is killed before it marks it sent.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_RELAY, infra.mongo_uri, writer_settings.database, infra.kafka_bootstrap,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert await process.wait() == -signal.SIGKILL
    assert len(await read_all(infra.kafka_bootstrap, topic.name, 5)) == 5
    assert await writer_db[OUTBOX_COLLECTION].count_documents({"pending": True}) == 5

    # 2. A restarted relay finds them on the broker (they were in flight when it died) and does not send
    #    them again: each event is once on the wire. (Before, every event went twice.)
    producer = Publisher(infra.kafka_bootstrap, "restarted-relay")
    await producer.start()
    try:
        relay = OutboxRelay(writer_db, producer, service="crash-writer", lease_ttl_s=1)
        assert await eventually(lambda: relay._hold_lease(), timeout_s=10)  # the dead relay's lease expires
        assert await relay.relay_once() == 5
        assert await writer_db[OUTBOX_COLLECTION].count_documents({"pending": True}) == 0
        marked = await writer_db[OUTBOX_COLLECTION].find({}, {"partition": 1, "offset": 1}).to_list()
        assert len({(d["partition"], d["offset"]) for d in marked}) == 5  # each where the broker holds it
        assert await relay.relay_once() == 0
        await relay.reader.stop()
        messages = await read_all(infra.kafka_bootstrap, topic.name, 5)
        assert len(messages) == 5
        # A replayed copy (an agency's topic read twice, a consumer rewinding) is still applied once.
        messages = messages + messages

        # 3. The consumer's projection holds each event exactly once.
        reader_db = client[reader_settings.database]
        consumer = EventConsumer(
            service="crash-reader", group=f"crash-reader-{uuid.uuid4().hex[:6]}", topics=[topic.name],
            handler=account_projector(reader_settings.database), mongo_client=client, db=reader_db, dlq_producer=producer,
            bootstrap=infra.kafka_bootstrap,
        )
        await consumer.start()
        try:
            outcomes = [await consumer.handle_message(m) for m in messages]
        finally:
            await consumer.stop()
        assert sorted(outcomes) == ["duplicate"] * 5 + ["processed"] * 5
        docs = await reader_db.account_projection.find().to_list()
        assert sorted(d["_id"] for d in docs) == [f"acct-{i}" for i in range(5)]
        assert all(d["applied"] == 1 for d in docs)
    finally:
        await producer.stop()
        await client.close()


async def test_a_send_whose_acknowledgements_were_lost_is_found_on_the_broker_not_sent_again(infra):
    """The relay writes nothing to an event before sending it; what it keeps in memory as on its way is looked for."""
    topic = await new_topic(infra.kafka_bootstrap)
    updates = CommandCounter("update", OUTBOX_COLLECTION)
    client = create_client(infra.mongo_uri, event_listeners=[updates])
    db = client[f"lost_acks_{uuid.uuid4().hex[:6]}"]
    await apply_indexes(db, OUTBOX_INDEXES)
    producer = Publisher(infra.kafka_bootstrap, "lost-acks")
    await producer.start()
    relay = OutboxRelay(db, producer, service="lost-acks")
    send_all = producer.send_all
    updates_at_send: list[int] = []

    async def sent_but_acknowledgements_lost(records):
        updates_at_send.append(updates.count)
        await send_all(records)  # on the broker...
        return [KafkaConnectionError("connection lost before the acknowledgement")] * len(records)  # ...not known so

    async def add(n: int) -> list[CloudEvent]:
        events = [CloudEvent(source="/writer", type="account.created", subject=f"a-{uuid.uuid4().hex[:6]}", data={}) for _ in range(n)]
        await in_transaction(client, lambda session: Outbox(db).add_many(session, [(topic.name, e) for e in events]))
        return events

    looked_for: list[TopicPartition] = []
    latest_ids = relay.reader.latest_ids

    async def looking_for(tp, count):
        looked_for.append(tp)
        return await latest_ids(tp, count)

    relay.reader.latest_ids = looking_for
    try:
        assert await relay.relay_once() == 0  # nothing pending when it started: nothing a predecessor left in doubt
        await add(2)
        assert await relay.relay_once() == 2
        assert looked_for == []  # events written since are sent without looking for them on the broker first
        marked = updates.count
        producer.send_all = sent_but_acknowledgements_lost
        lost = await add(3)
        with pytest.raises(PublishFailed):
            await relay.relay_once()
        assert updates_at_send == [marked]  # nothing written to the events between reading them and sending them
        assert await db[OUTBOX_COLLECTION].count_documents({"pending": True}) == 3
        producer.send_all = send_all

        # The next pass looks for the three on the broker, finds them there and marks them where they are.
        assert await relay.relay_once() == 3
        assert looked_for
        assert await relay.relay_once() == 0
        on_topic = {(m.partition, m.offset): CloudEvent.from_json(m.value).id
                    for m in await all_messages(infra.kafka_bootstrap, [topic.name])}
        assert len(on_topic) == 5 and set(on_topic.values()) >= {e.id for e in lost}  # once each: not sent again
        docs = await db[OUTBOX_COLLECTION].find({"_id": {"$in": [e.id for e in lost]}}).to_list()
        assert all("pending" not in d and on_topic[(d["partition"], d["offset"])] == d["_id"] for d in docs)
    finally:
        producer.send_all = send_all
        await relay.reader.stop()
        await producer.stop()
        await client.close()


async def test_a_relay_taking_over_reads_back_what_its_predecessor_sent_since_its_verify_from(infra):
    """What awaits its read-back lives in the relay's memory; the lease document carries `verify_from`, so a relay
    taking over reads back what its predecessor sent after it — and only that."""
    topic = await new_topic(infra.kafka_bootstrap)
    client = create_client(infra.mongo_uri)
    db = client[f"handover_{uuid.uuid4().hex[:6]}"]
    await apply_indexes(db, OUTBOX_INDEXES)
    outbox = db[OUTBOX_COLLECTION]
    producer = Publisher(infra.kafka_bootstrap, "handover")
    await producer.start()
    first = OutboxRelay(db, producer, service="handover-first", lease_ttl_s=1, verify_after_s=0)
    second = OutboxRelay(db, producer, service="handover-second", lease_ttl_s=1, verify_after_s=0)

    async def add(n: int) -> list[CloudEvent]:
        events = [CloudEvent(source="/writer", type="account.created", subject=f"a-{uuid.uuid4().hex[:6]}", data={}) for _ in range(n)]
        await in_transaction(client, lambda session: Outbox(db).add_many(session, [(topic.name, e) for e in events]))
        return events

    def republished(service: str) -> float:
        return REGISTRY.get_sample_value("harbour_events_republished_total", {"service": service, "topic": topic.name}) or 0

    try:
        # 1. The first relay sends three events and reads them back at once; its renewal records where it stands.
        early = await add(3)
        assert await first._pass() == 3
        assert first.awaiting_read_back == 0
        first._renewed_at = float("-inf")
        assert await first._hold_lease()
        # (Sent a second earlier, as far as the outbox shows: no tie at the millisecond with what follows.)
        await outbox.update_many({"_id": {"$in": [e.id for e in early]}}, {"$inc": {"offset": 0}, "$set": {"sent_at": (
            await outbox.find_one({"_id": early[0].id}))["sent_at"] - timedelta(seconds=1)}})
        # 2. It sends two more and dies before reading them back (its last renewal came after the send).
        first.verify_after_s = 3600
        late = await add(2)
        first._housekept_at = float("-inf")
        assert await first._pass() == 2 and first.awaiting_read_back == 2
        first._renewed_at = float("-inf")
        assert await first._hold_lease()
        # The broker lost one of the late events and, had anyone looked, one of the early ones (each is recorded at
        # an offset the broker never held, as a lost acknowledged record looks to the relay).
        for event, offset in ((late[0], 1_000_000), (early[0], 1_000_001)):
            await outbox.update_one({"_id": event.id}, {"$set": {"offset": offset}})

        # 3. The second relay takes the lease over once it lapses and reads back from the first one's verify_from.
        assert await eventually(second._hold_lease, timeout_s=10)
        second._housekept_at = float("-inf")
        await second._pass()
        assert republished("handover-second") == 1  # the late one; the early ones had been read back already
        assert {d["_id"] for d in await outbox.find({"pending": True}).to_list()} == {late[0].id}
        second._housekept_at = float("-inf")
        assert await second._pass() == 1  # sent again, and read back
        assert second.awaiting_read_back == 0
        await second.release_lease()
        lease = await db["outbox_lease"].find_one({"_id": "relay"})
        assert lease["verify_from"] >= (await outbox.find_one({"_id": late[0].id}))["sent_at"]
    finally:
        await first.reader.stop()
        await second.reader.stop()
        await producer.stop()
        await client.drop_database(db.name)
        await client.close()


async def test_the_outbox_index_an_older_version_made_for_read_backs_is_dropped_at_start(infra):
    """`unverified` was written to every sent event and unset after its read-back; left in place, its index would
    still cost every outbox write."""
    topic = await new_topic(infra.kafka_bootstrap)
    settings = infra.settings("retired-index")
    client = create_client(infra.mongo_uri)
    outbox = client[settings.database][OUTBOX_COLLECTION]
    await outbox.create_index([("unverified", 1), ("seq", 1)], name="outbox_unverified_seq")
    try:
        async with TestClient(TestServer(writer_app(settings, topic))) as w:
            assert (await w.get("/readyz")).status == 200
            names = {spec["name"] async for spec in await outbox.list_indexes()}
            assert "outbox_unverified_seq" not in names and {"outbox_pending_seq", "outbox_sent_at"} <= names
    finally:
        await client.drop_database(settings.database)
        await client.close()


async def test_poison_message_goes_to_dead_letter_topic_and_consumption_continues(infra):
    topic = await new_topic(infra.kafka_bootstrap)
    settings = infra.settings("poison-reader")
    attempts: dict[str, int] = {}

    async def handler(event: CloudEvent, session) -> None:
        attempts[event.id] = attempts.get(event.id, 0) + 1
        if event.data.get("poison"):
            raise ValueError("this event can never be applied")
        await session.client[settings.database].applied.insert_one({"_id": event.id}, session=session)

    app = create_service_app(settings)
    install_backbone(app, indexes=(), topics=(topic,))
    install_consumer(
        app, group="poison-reader", topics=[topic.name], handler=lambda db: handler, max_attempts=3, retry_backoff_s=0.01
    )

    poison = CloudEvent(source="/t", type="test.poison", subject="k", data={"poison": True})
    good = CloudEvent(source="/t", type="test.good", subject="k", data={})
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    try:
        # Same key, same partition: the good event queues behind the poison one and the garbage.
        await producer.send_and_wait(topic.name, poison.to_json(), key=b"k")
        await producer.send_and_wait(topic.name, b"{not a cloud event", key=b"k")
        await producer.send_and_wait(topic.name, good.to_json(), key=b"k")
    finally:
        await producer.stop()

    async with TestClient(TestServer(app)):
        applied = app[DATABASE].applied
        assert await eventually(lambda: applied.find_one({"_id": good.id}))
        assert await applied.count_documents({}) == 1
    assert attempts[poison.id] == 3
    assert attempts[good.id] == 1

    dead = await read_all(infra.kafka_bootstrap, topic.dlq, 2)
    assert len(dead) == 2
    headers = [dict(m.headers) for m in dead]
    assert CloudEvent.from_json(dead[0].value).id == poison.id
    assert headers[0]["dlq_reason"].startswith(b"handler failed 3 times: ValueError")
    assert headers[0]["dlq_original_topic"] == topic.name.encode()
    assert dead[1].value == b"{not a cloud event"
    assert headers[1]["dlq_reason"].startswith(b"invalid envelope")
    labels = {"service": "poison-reader", "group": "poison-reader", "topic": topic.name}
    assert REGISTRY.get_sample_value("harbour_events_dead_lettered_total", labels) == 2
    assert REGISTRY.get_sample_value("harbour_event_handler_failures_total", labels) == 3


FETCH, OFFSET_COMMIT = 1, 8  # Kafka API keys


def _count_requests(client, api_key: int) -> dict[str, int]:
    """Count the requests of one kind an aiokafka client sends from now on (`counts["n"]`)."""
    counts = {"n": 0}
    send = client.send

    async def counting_send(node_id, request, **kwargs):
        counts["n"] += request.API_KEY == api_key
        return await send(node_id, request, **kwargs)

    client.send = counting_send
    return counts


async def _fetches_while_idle_then_one_event(infra, name: str, *, quiet_first_s: float = 0.0) -> tuple[int, list[str], CloudEvent]:
    """A consumer of a new topic, idle for `quiet_first_s` and then one more second, in which its fetches are counted;
    then one event is published and read. Returns (the fetches of that second, the ids handled, the event)."""
    topic = await new_topic(infra.kafka_bootstrap)
    client = create_client(infra.mongo_uri)
    seen: list[str] = []

    async def handler(event: CloudEvent, session) -> None:
        seen.append(event.id)

    producer = Publisher(infra.kafka_bootstrap, f"{name}-test")
    await producer.start()
    consumer = EventConsumer(
        service=name, group=f"{name}-{uuid.uuid4().hex[:6]}", topics=[topic.name], handler=handler,
        mongo_client=client, db=client[infra.settings(name).database], dlq_producer=producer,
        bootstrap=infra.kafka_bootstrap,
    )
    await consumer.start()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        while loop.time() - started < quiet_first_s:
            assert await consumer.consume_batch() == 0
        fetches = _count_requests(consumer.consumer._client, FETCH)
        started = loop.time()
        while loop.time() - started < 1.0:
            assert await consumer.consume_batch() == 0
        idle_fetches = fetches["n"]
        event = CloudEvent(source="/t", type="test.late", subject="k", data={})
        await producer.send_and_wait(topic.name, event.to_json(), key=b"k")
        sent = loop.time()
        for _ in range(20):  # each call waits up to 500 ms for records
            if await consumer.consume_batch():
                break
        print(f"{name}: the event was handled {1000 * (loop.time() - sent):.0f} ms after it was sent")
    finally:
        await consumer.stop()
        await producer.stop()
        await client.close()
    return idle_fetches, seen, event


async def test_an_idle_consumer_does_not_hammer_the_broker_and_still_sees_new_events(infra):
    """The local broker answers an empty fetch at once (it ignores fetch.max.wait.ms): without the pause
    after an empty fetch, an idle consumer asks hundreds of times a second and every idle service burns CPU."""
    idle_fetches, seen, event = await _fetches_while_idle_then_one_event(infra, "idle-reader")
    # One fetch per pause (50 ms) at most, with room for the fetches that bring records.
    assert 0 < idle_fetches <= 30, idle_fetches
    assert seen == [event.id]


async def test_a_consumer_quiet_for_a_while_asks_four_times_a_second_and_still_sees_new_events(infra):
    """Even at one fetch per 50 ms, idle consumers were most of an idle service's CPU: once its topics have been quiet
    for 2 s a consumer waits 250 ms after an empty fetch (kafka.py: pause_after_empty_fetches)."""
    quiet_fetches, seen, event = await _fetches_while_idle_then_one_event(infra, "quiet-reader", quiet_first_s=2.5)
    assert 0 < quiet_fetches <= 6, quiet_fetches  # 4 a second, with room for the one under way
    assert seen == [event.id]


async def test_offsets_are_committed_once_a_second_in_one_request_and_at_stop(infra):
    """A stream of single-record fetches made one OffsetCommit request per record (as much broker work as the record
    itself); now handled offsets are committed at most once a second, and what is left when the consumer stops."""
    topic = await new_topic(infra.kafka_bootstrap)  # two partitions
    client = create_client(infra.mongo_uri)
    seen: list[str] = []

    async def handler(event: CloudEvent, session) -> None:
        seen.append(event.id)

    producer = Publisher(infra.kafka_bootstrap, "commit-test")
    await producer.start()
    group = f"commit-reader-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        service="commit-reader", group=group, topics=[topic.name], handler=handler,
        mongo_client=client, db=client[infra.settings("commit-reader").database], dlq_producer=producer,
        bootstrap=infra.kafka_bootstrap,
    )
    await consumer.start()
    commits = _count_requests(consumer.consumer._client, OFFSET_COMMIT)
    loop = asyncio.get_running_loop()
    sent = []
    try:
        started = loop.time()
        for i in range(30):  # one at a time, each read by a fetch of its own
            event = CloudEvent(source="/t", type="test.one", subject=f"k{i}", data={})
            await producer.send_and_wait(topic.name, event.to_json(), key=f"k{i}".encode())
            sent.append(event.id)
            while event.id not in seen:
                await consumer.consume_batch()
        elapsed = loop.time() - started
        during = commits["n"]
    finally:
        await consumer.stop()
        await producer.stop()
        await client.close()
    assert sorted(seen) == sorted(sent)
    assert during <= elapsed / consumer.commit_every_s + 1, (during, elapsed)  # was 30, one per record
    # At stop, everything handled was committed: a new member of the group starts after the last record.
    reader = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        ends = await reader.end_offsets(partitions)
        assert {tp: await reader.committed(tp) or 0 for tp in partitions} == ends
    finally:
        await reader.stop()


async def test_the_relays_read_back_leaves_no_fetcher_running_between_reads(infra):
    """The relay reads its sent events back (OffsetReader). Its consumer kept the partition assigned afterwards, and
    aiokafka's fetcher went on asking the local broker (which answers an empty fetch at once) hundreds of times a
    second, for ever: a third of a core in auth and notify once they had published anything."""
    topic = await new_topic(infra.kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    events = [CloudEvent(source="/t", type="test.readback", subject="k", data={}) for _ in range(3)]
    try:
        sent = [await producer.send_and_wait(topic.name, e.to_json(), key=b"k", partition=0) for e in events]
    finally:
        await producer.stop()
    reader = OffsetReader(infra.kafka_bootstrap, "readback-test", None)
    tp = TopicPartition(topic.name, 0)
    try:
        read = await reader.event_ids(tp, sent[0].offset, sent[-1].offset)
        assert [read.ids[m.offset] for m in sent] == [e.id for e in events]
        fetches = _count_requests(reader._consumer._client, FETCH)
        await asyncio.sleep(1.0)  # the interval itself is what is measured: fetches made while nobody reads
        assert fetches["n"] <= 2, fetches
        # And it reads again as before.
        again = await reader.event_ids(tp, sent[0].offset, sent[-1].offset)
        assert again.ids == read.ids
    finally:
        await reader.stop()

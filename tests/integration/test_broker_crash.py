"""A broker killed with SIGKILL loses records it had acknowledged; the platform converges anyway.

The local broker keeps about the last second of acknowledged writes in memory only. These tests run a
broker of their own (they kill it), publish through the real outbox relay, kill the broker right after the
acknowledgements, start it again on the same data, and check from the topic and the consumer's database
that every event arrives once.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import UTC, datetime

import pytest
from pymongo import UpdateOne

from libs.devstack import DevStack, StackConfig
from libs.devstack.config import REPO_ROOT
from libs.events import CloudEvent, EventConsumer, Outbox, OutboxRelay, Publisher
from libs.events.outbox import OUTBOX_COLLECTION, OUTBOX_INDEXES
from libs.store import apply_indexes, create_client, in_transaction

from ..support.broker import all_messages, new_topic
from ..support.polling import eventually

pytestmark = pytest.mark.integration

EVENTS = 1200


@pytest.fixture
def own_stack():
    """A broker and a database of this test's own: the test kills the broker."""
    config = StackConfig.free_ports(REPO_ROOT / ".dev" / f"broker-crash-{uuid.uuid4().hex[:6]}")
    stack = DevStack(config)
    stack.up_infra()
    try:
        yield stack
    finally:
        stack.down()
        shutil.rmtree(stack.dev_dir, ignore_errors=True)


async def _write_events(client, db, topic: str) -> list[str]:
    events = [CloudEvent(source="/crash", type="test.counted", subject=f"s-{i % 50}", data={"n": i}) for i in range(EVENTS)]
    for start in range(0, EVENTS, 400):
        batch = events[start:start + 400]
        await in_transaction(client, lambda session, batch=batch: Outbox(db).add_many(session, [(topic, e) for e in batch]))
    return [e.id for e in events]


@pytest.mark.timeout(600)  # a consumer applies 1,200 events one transaction each: minutes on a loaded machine
async def test_events_the_broker_lost_after_acknowledging_them_are_published_again_and_consumed_once(own_stack):
    bootstrap, uri = own_stack.config.kafka_bootstrap, own_stack.config.mongo_uri
    topic = await new_topic(bootstrap)
    client = create_client(uri)
    writer_db, reader_db = client[f"writer_{uuid.uuid4().hex[:6]}"], client[f"reader_{uuid.uuid4().hex[:6]}"]
    await apply_indexes(writer_db, OUTBOX_INDEXES)
    ids = await _write_events(client, writer_db, topic.name)
    # How much the broker loses on SIGKILL varies from run to run (sometimes nothing): so that every run checks the
    # republishing, 50 events are recorded as acknowledged at offsets the broker never held — exactly what a lost
    # acknowledged record looks like to the relay. The real crash below usually adds its own losses.
    await writer_db[OUTBOX_COLLECTION].bulk_write([
        UpdateOne({"_id": event_id}, {"$set": {"sent_at": datetime.now(UTC), "partition": 0, "offset": 1_000_000 + i},
                                      "$unset": {"pending": ""}})
        for i, event_id in enumerate(ids[:50])])

    # A consumer reads along, as a service would; it counts each event it applies.
    async def count(event: CloudEvent, session) -> None:
        await reader_db.applied.update_one({"_id": event.id}, {"$inc": {"times": 1}}, upsert=True, session=session)

    publisher = Publisher(bootstrap, "crash-relay")
    await publisher.start()
    consumer = EventConsumer(service="crash-reader", group=f"crash-{uuid.uuid4().hex[:6]}", topics=[topic.name],
                             handler=count, mongo_client=client, db=reader_db, dlq_producer=publisher, bootstrap=bootstrap)
    await consumer.start()
    consuming = asyncio.create_task(consumer.run())
    relay = OutboxRelay(writer_db, publisher, service="crash-writer", batch_size=600, verify_after_s=3600)
    send_all = publisher.send_all

    async def crash_after_the_last_acknowledgement(records):
        results = await send_all(records)
        if await writer_db[OUTBOX_COLLECTION].count_documents({"pending": True}) == len(records):  # the last batch
            own_stack.crash("kafka")  # the broker dies the moment it acknowledged the last batch
        return results

    publisher.send_all = crash_after_the_last_acknowledgement
    try:
        while await writer_db[OUTBOX_COLLECTION].count_documents({"pending": True}):
            await relay.relay_once()
        publisher.send_all = send_all

        # The broker comes back on the same data, without the newest records it had acknowledged.
        own_stack.restart_infra_part("kafka")
        on_topic = {CloudEvent.from_json(m.value).id for m in await all_messages(bootstrap, [topic.name])}
        lost = set(ids) - on_topic
        assert set(ids[:50]) <= lost
        print(f"missing after the crash: {len(lost)} events ({len(lost) - 50} lost by the broker itself)")

        # The relay, running as in a service, reads back what it sent, finds what is missing and publishes it
        # again — once. (Its first send after the restart fails: OutOfOrderSequenceNumber, the old producer's.)
        relay.verify_after_s = 1.0
        relaying = asyncio.create_task(relay.run())
        outbox = writer_db[OUTBOX_COLLECTION]
        # (It takes the lease and reads back what was sent since: the 50 and its own sends. The 50 were "sent" by a
        # relay that never read them back, as a relay killed with the broker leaves them.)
        async def all_confirmed() -> bool:
            return await _count_is(outbox, {"pending": True}, 0) and relay.awaiting_read_back == 0 and not relay._takeover_pending

        assert await eventually(all_confirmed, timeout_s=240)
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
        copies: dict[str, int] = {}
        for message in await all_messages(bootstrap, [topic.name]):
            event_id = CloudEvent.from_json(message.value).id
            copies[event_id] = copies.get(event_id, 0) + 1
        assert set(copies) == set(ids)
        assert max(copies.values()) == 1, "an event is on the topic more than once"

        # The consumer, whose position had run past the shrunken log, went back and applied every event once.
        assert await eventually(lambda: _count_at_least(reader_db, EVENTS), timeout_s=240)
        assert await reader_db.applied.count_documents({"times": {"$ne": 1}}) == 0
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await consumer.stop()
        await relay.reader.stop()
        await publisher.stop()
        await client.close()


async def _count_is(collection, query: dict, expected: int) -> bool:
    return await collection.count_documents(query) == expected


async def _count_at_least(db, expected: int) -> bool:
    return await db.applied.count_documents({}) >= expected


async def test_a_consumer_stops_promptly_when_the_broker_is_gone_before_its_last_commit(own_stack):
    """Stopping commits what was handled; with the broker gone that commit retries for ever (aiokafka looks for
    the group coordinator until it finds one), and a service told to stop never did. The commit is bounded."""
    bootstrap, uri = own_stack.config.kafka_bootstrap, own_stack.config.mongo_uri
    topic = await new_topic(bootstrap)
    client = create_client(uri)
    seen: list[str] = []

    async def handler(event: CloudEvent, session) -> None:
        seen.append(event.id)

    producer = Publisher(bootstrap, "stop-test")
    await producer.start()
    consumer = EventConsumer(service="stop-reader", group=f"stop-reader-{uuid.uuid4().hex[:6]}", topics=[topic.name],
                             handler=handler, mongo_client=client, db=client["stop_reader"], dlq_producer=producer,
                             bootstrap=bootstrap, commit_every_s=3600.0)  # nothing committed before the stop
    await consumer.start()
    loop = asyncio.get_running_loop()
    try:
        event = CloudEvent(source="/t", type="test.one", subject="k", data={})
        await producer.send_and_wait(topic.name, event.to_json(), key=b"k")
        while event.id not in seen:
            await consumer.consume_batch()
        assert consumer._uncommitted  # the stop has something to commit
        own_stack.crash("kafka")
        started = loop.time()
        await asyncio.wait_for(consumer.stop(), 60)  # old code: still retrying after 60 s
        stopped_in = loop.time() - started
    finally:
        await producer.stop()
        await client.close()
    assert stopped_in <= consumer.final_commit_timeout_s + 5, stopped_in

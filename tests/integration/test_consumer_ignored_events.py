"""A consumer commits past the events its handler does not act on without recording them (issue 17).

Against the real broker and database: of two events on one topic, the one the handler wants is applied in a
transaction with its processed-event record; the other is counted `ignored` and leaves nothing in the database.
"""

from __future__ import annotations

import uuid

import pytest

from libs.events import CloudEvent, EventConsumer, Publisher
from libs.events.consumer import PROCESSED_COLLECTION, wants_only
from libs.store import create_client

from ..support.broker import new_topic, read_all

pytestmark = pytest.mark.integration


async def test_an_event_the_handler_ignores_leaves_no_processed_record(infra):
    topic = await new_topic(infra.kafka_bootstrap)
    client = create_client(infra.mongo_uri)
    db = client[infra.settings("ignoring-reader").database]
    applied: list[str] = []

    async def handle(event: CloudEvent, session) -> None:
        applied.append(event.type)
        await db.applied.insert_one({"_id": event.id}, session=session)

    wanted = CloudEvent(source="/t", type="test.wanted", subject="k", data={})
    ignored = CloudEvent(source="/t", type="test.other", subject="k", data={})
    producer = Publisher(infra.kafka_bootstrap, "ignoring-test")
    await producer.start()
    try:
        for event in (ignored, wanted):
            await producer.send_and_wait(topic.name, value=event.to_json(), key=b"k")
        messages = await read_all(infra.kafka_bootstrap, topic.name, 2)
        consumer = EventConsumer(
            service="ignoring-reader", group=f"ignoring-{uuid.uuid4().hex[:6]}", topics=[topic.name],
            handler=wants_only(handle, lambda event: event.type == "test.wanted"), mongo_client=client, db=db,
            dlq_producer=producer, bootstrap=infra.kafka_bootstrap,
        )
        await consumer.start()
        try:
            outcomes = [await consumer.handle_message(m) for m in messages]
        finally:
            await consumer.stop()
        assert outcomes == ["ignored", "processed"]
        assert applied == ["test.wanted"]
        records = await db[PROCESSED_COLLECTION].find().to_list()
        assert [r["type"] for r in records] == ["test.wanted"]
    finally:
        await producer.stop()
        await client.close()


async def test_the_services_consumers_skip_what_they_do_not_handle():
    from services.formfill.events import wants as formfill_wants
    from services.notify.events import wants as notify_wants
    from services.signing.events import wants as signing_wants

    def decided(service: str) -> CloudEvent:
        return CloudEvent(source="/auth", type="approval.decided", subject="a", data={"requester": {"service": service}})

    login_audit = CloudEvent(source="/auth", type="audit.recorded", subject="acct", data={"action": "login"})
    activation_audit = CloudEvent(source="/auth", type="audit.recorded", subject="acct", data={"action": "device.activate"})
    activated = CloudEvent(source="/auth", type="identity.device_activated", subject="acct", data={"account_id": "acct"})
    assert not formfill_wants(decided("auth")) and formfill_wants(decided("formfill"))
    assert not signing_wants(decided("auth")) and signing_wants(decided("signing"))
    # notify reads no audit record (its new-device alert comes as identity.device_activated).
    assert not notify_wants(login_audit) and not notify_wants(activation_audit) and notify_wants(activated)
    enrolled = CloudEvent(source="/auth", type="identity.enrolled", subject="acct", data={})
    assert formfill_wants(enrolled) and signing_wants(enrolled) and notify_wants(enrolled)

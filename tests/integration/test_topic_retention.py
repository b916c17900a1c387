"""Topic retention on the real local broker: topics are created with the registry's retention, the local stack's
cap shortens the event topics' (an existing topic's too), never the dead letters' or the revocations', and the
broker really drops what is older than the cap while a topic read from the start keeps it."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from libs.events.kafka import Publisher, Record, ensure_topics
from libs.events.topics import DAY_MS, DLQ_RETENTION_MS, EVENT_RETENTION_MS, Topic
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def retention_ms(bootstrap: str, *names: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    finally:
        await admin.close()
    found = {}
    for response in described:
        for _error, _message, _type, name, entries in response.resources:
            found[name] = int(next(entry[1] for entry in entries if entry[0] == "retention.ms"))
    return found


def unique(kind: str) -> str:
    return f"test.retention.{kind}.{uuid.uuid4().hex[:8]}"


async def test_topics_are_created_with_the_registrys_retention_and_the_cap_shortens_only_event_topics(infra):
    plain, capped, whole = Topic(unique("plain"), "t"), Topic(unique("capped"), "t"), \
        Topic(unique("whole"), "t", retention_ms=DAY_MS, read_from_start=True)
    await ensure_topics(infra.kafka_bootstrap, [plain])
    await ensure_topics(infra.kafka_bootstrap, [capped, whole], retention_cap_ms=60_000)
    found = await retention_ms(infra.kafka_bootstrap, plain.name, plain.dlq, capped.name, capped.dlq, whole.name)
    assert found == {plain.name: EVENT_RETENTION_MS, plain.dlq: DLQ_RETENTION_MS,
                     capped.name: 60_000, capped.dlq: DLQ_RETENTION_MS, whole.name: DAY_MS}


async def test_the_cap_shortens_a_topic_made_before_it_and_leaves_a_shorter_one_alone(infra):
    older, shorter = Topic(unique("older"), "t"), Topic(unique("shorter"), "t")
    await ensure_topics(infra.kafka_bootstrap, [older], with_dlq=False)
    await ensure_topics(infra.kafka_bootstrap, [shorter], with_dlq=False, retention_cap_ms=30_000)
    await ensure_topics(infra.kafka_bootstrap, [older, shorter], with_dlq=False, retention_cap_ms=60_000)
    assert await retention_ms(infra.kafka_bootstrap, older.name, shorter.name) == {older.name: 60_000, shorter.name: 30_000}


async def test_the_broker_drops_records_older_than_the_cap_but_a_topic_read_from_the_start_keeps_them(infra):
    capped = Topic(unique("dropped"), "t", partitions=1)
    whole = Topic(unique("kept"), "t", partitions=1, retention_ms=DAY_MS, read_from_start=True)
    await ensure_topics(infra.kafka_bootstrap, [capped, whole], with_dlq=False, retention_cap_ms=1_000)
    publisher = Publisher(infra.kafka_bootstrap, "retention-test")
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(capped.name, 0), TopicPartition(whole.name, 0)]
    try:
        for topic in (capped, whole):
            await publisher.send_all([Record(topic.name, b"early", None) for _ in range(5)])

        async def dropped() -> bool:
            # The broker applies retention as the topic is written to: one more record each time we look.
            await publisher.send_all([Record(topic.name, b"late", None) for topic in (capped, whole)])
            starts = await consumer.beginning_offsets(partitions)
            return starts[partitions[0]] >= 5

        await eventually(dropped, timeout_s=30, interval_s=0.5)
        assert (await consumer.beginning_offsets([partitions[1]]))[partitions[1]] == 0  # nothing of it dropped
    finally:
        await consumer.stop()
        await publisher.stop()

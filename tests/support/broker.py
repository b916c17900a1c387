"""The broker in tests: a topic of one's own, and reading topics back from the beginning."""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.events.kafka import ensure_topics
from libs.events.topics import Topic


async def new_topic(bootstrap: str, prefix: str = "test") -> Topic:
    topic = Topic(f"{prefix}.{uuid.uuid4().hex[:10]}.events", "a topic of one test", partitions=2)
    await ensure_topics(bootstrap, [topic])
    return topic


async def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    """Read `expected` messages from the start of `topic` with a throw-away consumer."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(messages) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for batch in batches.values():
                messages.extend(batch)
    finally:
        await consumer.stop()
    return messages


async def all_messages(bootstrap: str, topics: list[str] | None = None) -> list:
    """Every message of `topics` (default: every topic on the broker), from the beginning to the current end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = topics or [t for t in await admin.list_topics() if not t.startswith("__")]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    messages = []
    try:
        # A topic the admin's describe answered with an error (no partitions listed) is looked up in the consumer's
        # own metadata: reading nothing from it would make "every message" silently none.
        described_ok = {tp.topic for tp in partitions}
        missing = [name for name in names if name not in described_ok]
        if missing:
            await consumer.topics()
            partitions += [TopicPartition(name, p) for name in missing for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                messages.extend(batch)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return messages


def raw_bytes(message) -> bytes:
    """A message's value, key and header values together, for sweeps that look for what must not be there."""
    return (message.value or b"") + (message.key or b"") + b"".join(v for _, v in message.headers or ())

"""Helpers for the event tests: unique topics, and awaiting a condition instead of sleeping."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer

from libs.events.kafka import ensure_topics
from libs.events.topics import Topic


async def new_topic(bootstrap: str, prefix: str = "test") -> Topic:
    topic = Topic(f"{prefix}.{uuid.uuid4().hex[:10]}.events", "a topic of one test", partitions=2)
    await ensure_topics(bootstrap, [topic])
    return topic


async def eventually(predicate, *, timeout_s: float = 30.0, interval_s: float = 0.1):
    """Await until `predicate()` (sync or async) returns something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


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

"""The consumer groups of services run in process by the tests: each under a prefix of its own, reading from now on.

An in-process service started under the group names the platform uses would
join the groups of whatever else consumes on the same broker (an earlier
test's copy, the e2e platform's processes) and be handed the events earlier
tests published. So each started copy gets a fresh prefix
(HARBOUR_KAFKA_GROUP_PREFIX), and its groups are committed at the end of
every topic before it starts: it sees only what is published during its test.
"""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.events.kafka import ensure_topics
from libs.events.topics import ALL_TOPICS
from services.auth.events import CONSUMER_GROUP as AUTH
from services.formfill.events import CONSUMER_GROUP as FORMFILL
from services.notify.dispatcher import GROUP as DISPATCHER
from services.notify.dispatcher import PRIORITY_GROUP as DISPATCHER_PRIORITY
from services.notify.events import CONSUMER_GROUP as NOTIFY
from services.signing.events import CONSUMER_GROUP as SIGNING
from services.signing.ledger.service import CONSUMER_GROUP as SIGNING_LEDGER

# Every consumer group a service or worker joins (install_consumer's `group`).
GROUPS = (AUTH, FORMFILL, NOTIFY, DISPATCHER, DISPATCHER_PRIORITY, SIGNING, SIGNING_LEDGER)


def new_group_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}-"


async def read_from_now(bootstrap: str, prefix: str) -> None:
    """Commit the current end of every platform topic for each group under `prefix` (new groups: nobody is in them)."""
    await ensure_topics(bootstrap, ALL_TOPICS)
    for group in GROUPS:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=prefix + group, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic.name, p) for topic in ALL_TOPICS for p in range(topic.partitions)]
            consumer.assign(partitions)
            await consumer.commit(await consumer.end_offsets(partitions))
        finally:
            await consumer.stop()


async def groups_under(bootstrap: str, prefix: str) -> set[str]:
    """The consumer groups on the broker whose names start with `prefix`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {group[0] for group in await admin.list_consumer_groups() if group[0].startswith(prefix)}
    finally:
        await admin.close()

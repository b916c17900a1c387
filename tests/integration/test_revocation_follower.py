"""A process's revocation list against a real broker: loaded from the topic, current while the broker answers,
and visibly stale (the metric grows) once it cannot confirm that any more.

The test runs its own Kafka-protocol broker, so stopping it disturbs no one.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from libs.devstack import DevStack, StackConfig
from libs.devstack import processes
from libs.events.envelope import CloudEvent
from libs.events.topics import REVOCATIONS
from libs.revocation.follower import CONFIRM_EVERY_S, Revocations
from libs.revocation.metrics import REVOCATION_ENTRIES, REVOCATION_STALENESS
from libs.revocation.projection import TOKENS_REVOKED

from ..support.polling import eventually

pytestmark = pytest.mark.integration


def _sample(gauge, service: str) -> float:
    return next(s.value for s in gauge.collect()[0].samples if s.labels.get("service") == service)


async def test_the_list_loads_follows_and_shows_its_staleness_when_the_broker_is_gone(tmp_path):
    own = DevStack(StackConfig.free_ports(tmp_path / "own-broker"))
    spec = own.kafka_spec()
    processes.start(spec)
    bootstrap = own.config.kafka_bootstrap
    processes.wait_until(lambda: processes.port_open("127.0.0.1", own.config.kafka_port), timeout_s=30, what="own broker")
    service = f"follower-{time.monotonic_ns()}"
    revocations = Revocations(service=service, bootstrap=bootstrap, create_topic=True)
    task = asyncio.create_task(revocations.run())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    try:
        await asyncio.wait_for(revocations.loaded.wait(), 60)
        await producer.start()
        event = CloudEvent(source="/auth", type=TOKENS_REVOKED, data={"jtis": ["jti-1"], "expires_at": time.time() + 600})
        await producer.send_and_wait(REVOCATIONS.name, event.to_json(), key=b"revocations")
        await eventually(lambda: revocations.refusal({"jti": "jti-1", "sub": "s"}) is not None, timeout_s=10)
        assert _sample(REVOCATION_ENTRIES, service) == 1
        # Healthy: the broker confirms every couple of seconds that the list is current.
        confirmed = revocations._fetched_at
        await eventually(lambda: revocations._fetched_at > confirmed, timeout_s=CONFIRM_EVERY_S + 10)
        assert _sample(REVOCATION_STALENESS, service) < CONFIRM_EVERY_S + 3

        await producer.stop()
        assert processes.stop(spec.pid_file, spec.marker)
        # The broker is gone: the list keeps what it knows, and its staleness grows for the alert to see.
        await eventually(lambda: _sample(REVOCATION_STALENESS, service) > 15, timeout_s=40, interval_s=0.5)
        assert revocations.refusal({"jti": "jti-1", "sub": "s"}) is not None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        processes.stop(spec.pid_file, spec.marker)

"""A consumer whose start failed (the broker not there) is stopped, not dropped with its client still open.

Against a port nothing listens on: aiokafka's start fails at once with the connection refused. A consumer left like
that is never closed, and aiokafka reports it ("Unclosed AIOKafkaConsumer") when it is collected — once per retry
of the loops that wait for the broker (the revocation list, auth's client directory, the outbox's read-back).
"""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from libs.devstack.processes import free_port
from libs.events.kafka import start_consumer
from libs.revocation import follower as follower_module
from libs.revocation.follower import Revocations

from ..support.polling import eventually


def nowhere() -> str:
    return f"127.0.0.1:{free_port()}"


async def test_a_consumer_that_could_not_start_is_closed(caplog):
    consumer = AIOKafkaConsumer(bootstrap_servers=nowhere(), request_timeout_ms=2000)
    with pytest.raises(KafkaConnectionError):
        await start_consumer(consumer)
    assert consumer._closed
    del consumer
    gc.collect()
    assert "Unclosed AIOKafkaConsumer" not in caplog.text


async def test_the_revocation_list_waiting_for_the_broker_leaves_no_consumer_open(monkeypatch):
    made: list[AIOKafkaConsumer] = []
    original = follower_module.whole_topic_consumer

    def recorded(*args, **kwargs) -> AIOKafkaConsumer:
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(follower_module, "whole_topic_consumer", recorded)
    revocations = Revocations(service="start-test", bootstrap=nowhere())
    task = asyncio.create_task(revocations.run())
    try:
        await eventually(lambda: len(made) >= 2 or None, timeout_s=20, interval_s=0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not revocations.loaded.is_set()
    # Every attempt's consumer but the one the cancellation may have caught mid-start is closed.
    assert all(consumer._closed for consumer in made[:-1]), [consumer._closed for consumer in made]

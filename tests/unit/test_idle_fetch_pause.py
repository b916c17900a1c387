"""How long a consumer waits after a fetch that brought nothing (libs/events/kafka.py: pause_after_empty_fetches).

Pure logic against a stand-in aiokafka client: a clock the test moves and the pauses the wrapper asks for."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from libs.events import kafka

FETCH, METADATA = 1, 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class StandInClient:
    """Answers each fetch with or without records, taking `broker_holds_s` of the clock to answer."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.broker_holds_s = 0.0
        self.records = False

    async def send(self, node_id, request, **kwargs):
        self.clock.now += self.broker_holds_s
        partition = (0, 0, 10, b"records" if self.records else b"")
        return SimpleNamespace(topics=[("events", [partition])])


@pytest.fixture
def consumer(monkeypatch):
    clock = Clock()
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(round(seconds, 3))
        clock.now += seconds

    monkeypatch.setattr(kafka.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(kafka.asyncio, "sleep", sleep)
    client = StandInClient(clock)
    kafka.pause_after_empty_fetches(SimpleNamespace(_client=client))
    return SimpleNamespace(client=client, clock=clock, pauses=pauses,
                           fetch=lambda: client.send(0, SimpleNamespace(API_KEY=FETCH)))


async def test_empty_fetches_are_spaced_50_ms_while_records_flow_and_250_ms_once_quiet(consumer):
    consumer.client.records = True
    await consumer.fetch()
    assert consumer.pauses == []  # records: the next fetch at once
    consumer.client.records = False
    for _ in range(40):  # the last of them at 1.95 s: still within 2 s of the last records
        await consumer.fetch()
    assert consumer.pauses == [0.05] * 40
    consumer.clock.now += 0.1  # past 2 s
    await consumer.fetch()
    await consumer.fetch()
    assert consumer.pauses[-2:] == [0.25, 0.25]  # quiet: four fetches a second
    consumer.client.records = True
    await consumer.fetch()
    consumer.client.records = False
    await consumer.fetch()
    assert consumer.pauses[-1] == 0.05  # records again: back to the short pause


async def test_a_broker_that_held_the_empty_fetch_adds_no_pause(consumer):
    """Apache Kafka holds an empty fetch for fetch.max.wait.ms (500 ms): that wait already spaced the fetches."""
    consumer.client.broker_holds_s = 0.5
    consumer.clock.now += 10  # long quiet
    await consumer.fetch()
    consumer.client.broker_holds_s = 0.1  # held a little: only the rest of the pause
    await consumer.fetch()
    assert consumer.pauses == [0.15]


async def test_other_requests_are_never_paused(consumer):
    await consumer.client.send(0, SimpleNamespace(API_KEY=METADATA))
    assert consumer.pauses == []

"""How often a consumer renews its partition leases (libs/events/consumer.py, partition_leases.py).

Each renewal is four database operations per consumer, and an idle stack has a dozen consumers: renewing every 2 s
was ~40 % of an idle stack's database operations. A lease lapses 10 s after its last renewal; renewing once a third
of it has gone leaves two renewals to miss before another replica may take the partition. Pure logic: the loop runs
against a clock the test moves, with its renewal and its fetch stood in for."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import AsyncMongoClient

from libs.events import consumer as consumer_module
from libs.events.consumer import EventConsumer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Stop(BaseException):
    """Ends the loop (which outlives any Exception: it logs it and goes on)."""


async def renewals_within(seconds: float, monkeypatch, **options) -> list[float]:
    """The clock times at which the consumer's loop renewed its leases while `seconds` of fetches went by."""
    clock = Clock()
    monkeypatch.setattr(consumer_module.time, "monotonic", clock.monotonic)
    client = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    consumer = EventConsumer(service="lease-test", group="lease-test", topics=["t"], handler=None, mongo_client=client,
                             db=client["lease_test"], dlq_producer=None, bootstrap="127.0.0.1:1", **options)
    renewed: list[float] = []
    started = clock.now

    async def renew() -> None:
        renewed.append(clock.now - started)
        consumer._renewed_at = clock.now

    async def fetch() -> int:
        clock.now += 0.25  # an empty fetch and the pause after it
        if clock.now - started > seconds:
            raise Stop
        return 0

    monkeypatch.setattr(consumer, "_renew_assignment", renew)
    monkeypatch.setattr(consumer, "consume_batch", fetch)
    try:
        with pytest.raises(Stop):
            await asyncio.wait_for(consumer.run(), 5)
    finally:
        await consumer.consumer.stop()
        await client.close()
    return renewed


async def test_a_consumer_renews_its_leases_once_a_third_of_their_time_has_gone(monkeypatch):
    renewed = await renewals_within(10.0, monkeypatch)
    # At start, then every 3.33 s (the loop's 0.25 s steps round it up): three renewals in one lease's 10 s, not five.
    assert renewed == pytest.approx([0.0, 3.5, 7.0])
    assert all(later - earlier < 10.0 / 2 for earlier, later in zip(renewed, renewed[1:]))


async def test_a_shorter_lease_is_renewed_sooner_and_an_explicit_interval_still_wins(monkeypatch):
    assert await renewals_within(3.0, monkeypatch, lease_ttl_s=3.0) == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert await renewals_within(3.0, monkeypatch, renew_every_s=2.0) == pytest.approx([0.0, 2.0])

"""libs/retry_queue.py on the real database: claims are exclusive, a dead sender's claim expires, back-off doubles."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from libs.clock import FrozenClock
from libs.retry_queue import Backoff, Failure, RetryQueue
from libs.store import create_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def collection(infra):
    client = create_client(infra.mongo_uri)
    db = client[infra.settings("retry-queue").database]
    yield db["work"]
    await client.drop_database(db.name)
    await client.close()


async def test_two_senders_claim_disjoint_documents_and_a_dead_senders_claim_expires(collection):
    clock = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    queue = RetryQueue(collection, Backoff(first_wait_s=1, max_attempts=3), done="sent", given_up="failed", lease_s=30)
    await collection.insert_many([{"_id": f"w-{i}", **RetryQueue.queued(clock.now())} for i in range(250)])

    first, second = await asyncio.gather(queue.claim_due(clock.now(), 200), queue.claim_due(clock.now(), 200))

    ids = [d["_id"] for d in first] + [d["_id"] for d in second]
    assert len(ids) == len(set(ids))  # no document claimed by both
    rest = await queue.claim_due(clock.now(), 500)
    assert len(set(ids) | {d["_id"] for d in rest}) == len(ids) + len(rest) == 250
    assert all(d["attempts"] == 1 for d in first + second + rest)
    assert await queue.claim_due(clock.now(), 500) == []  # all leased
    clock.advance(30)  # neither sender recorded an outcome: their claims have expired
    assert len(await queue.claim_due(clock.now(), 500)) == 250


async def test_a_failure_waits_its_back_off_and_the_last_one_gives_up(collection):
    clock = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    queue = RetryQueue(collection, Backoff(first_wait_s=2, max_attempts=2), done="sent", given_up="failed", lease_s=30)
    await collection.insert_one({"_id": "w", **RetryQueue.queued(clock.now())})

    [doc] = await queue.claim_due(clock.now(), 10)
    assert await queue.failed(Failure(doc, "answered 503"), clock.now()) is False
    waiting = await collection.find_one({"_id": "w"})
    assert (waiting["state"], waiting["last_error"]) == ("pending", "answered 503")
    assert waiting["next_attempt_at"].replace(tzinfo=UTC) == clock.now() + timedelta(seconds=2)
    assert await queue.backlog() == 1

    clock.advance(2)
    [doc] = await queue.claim_due(clock.now(), 10)
    assert await queue.failed(Failure(doc), clock.now()) is True
    assert (await collection.find_one({"_id": "w"}))["state"] == "failed"
    assert await queue.backlog() == 0


async def test_a_taken_document_is_done_with_the_senders_fields(collection):
    clock = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    queue = RetryQueue(collection, Backoff(first_wait_s=1, max_attempts=3), done="delivered", given_up="given_up", lease_s=10)
    await collection.insert_one({"_id": "w", **RetryQueue.queued(clock.now())})

    [doc] = await queue.claim_due(clock.now(), 10)
    await queue.succeeded([doc["_id"]], {"delivered_at": clock.now()})

    done = await collection.find_one({"_id": "w"})
    assert (done["state"], done["attempts"], done["delivered_at"].replace(tzinfo=UTC)) == ("delivered", 1, clock.now())
    clock.advance(3600)
    assert await queue.claim_due(clock.now(), 10) == []

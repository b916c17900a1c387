"""libs/store/change_feed.py on the real database: a waiter is woken by an insert of its key through the change
stream, not by another key's; without change streams every waiter is woken each poll; nobody waiting, nothing is
asked of the database."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import monitoring
from pymongo.errors import OperationFailure

from libs.background import event_or_timeout
from libs.store import create_client
from libs.store.change_feed import ChangeFeed

from ..support.database import CommandRecorder
from ..support.polling import eventually

pytestmark = pytest.mark.integration

COMMANDS = CommandRecorder()
monitoring.register(COMMANDS)


class _NoChangeStreams:
    """The collection, its `watch` refused as PyMongo's is where the database offers no change streams."""

    def __init__(self, collection) -> None:
        self._collection = collection
        self.name = collection.name

    async def watch(self, *args, **kwargs):
        raise OperationFailure("The $changeStream stage is only supported on replica sets", code=40573)


@pytest.fixture
async def items(infra, scratch_database):
    # A client made after COMMANDS was registered, so that its commands are heard.
    client = create_client(infra.mongo_uri)
    yield client[scratch_database.name]["items"]
    await client.close()


async def _woken_at_start(feed: ChangeFeed, woken: asyncio.Event) -> None:
    await eventually(lambda: feed.mode == "change-stream" and woken.is_set(), timeout_s=10)
    woken.clear()


async def test_an_insert_wakes_the_waiters_of_its_key_only(items):
    feed = ChangeFeed(items, "account_id")
    mine, theirs = feed.subscribe("acc-mine"), feed.subscribe("acc-theirs")
    follower = asyncio.create_task(feed.run())
    try:
        await _woken_at_start(feed, mine)  # (re)opening the change stream wakes everyone once: a gap is looked at
        theirs.clear()
        await items.insert_one({"_id": "i-1", "account_id": "acc-mine", "body": "not sent anywhere"})
        assert await event_or_timeout(mine, 10)
        assert not theirs.is_set()
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def test_without_change_streams_every_waiter_is_woken_each_poll(items):
    feed = ChangeFeed(_NoChangeStreams(items), "account_id", poll_s=0.05, retry_s=60)
    woken = feed.subscribe("acc-mine")
    follower = asyncio.create_task(feed.run())
    try:
        for _ in range(3):  # again and again, with nothing inserted: each waiter looks for itself, as before
            assert await event_or_timeout(woken, 5)
            woken.clear()
        assert feed.mode == "polling"
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def test_with_nobody_waiting_nothing_is_asked(items):
    feed = ChangeFeed(items, "account_id")
    follower = asyncio.create_task(feed.run())
    try:
        woken = feed.subscribe("acc-mine")
        await _woken_at_start(feed, woken)
        feed.unsubscribe("acc-mine", woken)
        await eventually(lambda: feed.mode == "idle", timeout_s=10)  # its change stream closed
        with COMMANDS.recording(items.database.name) as seen:
            await items.insert_one({"_id": "i-2", "account_id": "acc-mine"})
            await asyncio.sleep(0.5)  # several of the feed's asks, were it asking
        assert [name for name, _, _ in seen] == ["insert"]
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

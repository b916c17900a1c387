"""auth's prompt feed (services/auth/approvals/stream.py) on the real database, with and without change streams.

The approvals stream's end-to-end test covers the change-stream path. Here the database stops offering change
streams (a deployment without a replica set, a failover): `watch` fails, as PyMongo's does then, and the feed
must fall back to polling the queue for the accounts with an open stream — handing out new prompts all the
same, only the listening account's, only pending and unexpired ones — and go back to the change stream once it
opens again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pymongo.errors import OperationFailure

from libs.clock import SystemClock
from services.auth.approvals.stream import MIN_EMPTY_WAIT_S, PromptFeed
from services.auth.collections import APPROVALS

from ..support.polling import eventually

pytestmark = pytest.mark.integration


class _Switchable:
    """The real database; its approvals collection's `watch` refused while `change_streams` is off."""

    def __init__(self, db) -> None:
        self._db = db
        self.change_streams = False

    def __getitem__(self, name: str):
        collection = self._db[name]
        if name != APPROVALS:
            return collection
        outer = self

        class _Collection:
            def __getattr__(self, attribute):
                return getattr(collection, attribute)

            async def watch(self, *args, **kwargs):
                if not outer.change_streams:
                    raise OperationFailure("The $changeStream stage is only supported on replica sets", code=40573)
                return await collection.watch(*args, **kwargs)

        return _Collection()


async def _next(queue: asyncio.Queue, wanted: str, seen: set[str]) -> dict:
    """The first notice for `wanted`, adding every id handed out until then to `seen` (polling hands a waiting
    prompt out again each round; the streams deduplicate)."""
    while True:
        item = await asyncio.wait_for(queue.get(), timeout=15)
        seen.add(item["approval_id"])
        if item["approval_id"] == wanted:
            return item


def _prompt(approval_id: str, account_id: str, expires_in_s: float, status: str = "pending") -> dict:
    return {"_id": approval_id, "account_id": account_id, "status": status, "request": {"action": "login"},
            "expires_at": SystemClock().now() + timedelta(seconds=expires_in_s)}


async def test_without_change_streams_the_feed_polls_and_goes_back_when_they_return(scratch_database):
    db = _Switchable(scratch_database)
    feed = PromptFeed(db, SystemClock(), poll_s=0.05, retry_s=0.5)
    mine = feed.subscribe("acc-mine")
    others = feed.subscribe("acc-other")
    follower = asyncio.create_task(feed.run())
    try:
        await scratch_database[APPROVALS].insert_many([
            _prompt("apr-expired", "acc-mine", -1),
            _prompt("apr-decided", "acc-mine", 60, status="approved"),
            _prompt("apr-theirs", "acc-nobody-listens", 60),
            _prompt("apr-1", "acc-mine", 60),
        ])

        seen: set[str] = set()
        first = await _next(mine, "apr-1", seen)

        assert feed.mode == "polling"
        assert first == {"approval_id": "apr-1", "kind": "login", "expires_at": first["expires_at"]}
        seen |= {item["approval_id"] for item in _drain(mine)}
        assert seen == {"apr-1"}  # never the expired, the decided or another account's prompt
        assert others.empty()

        # Change streams are back: the feed returns to them after its retry spell, and new prompts still arrive.
        db.change_streams = True
        await eventually(lambda: feed.mode == "change-stream", timeout_s=15, interval_s=0.05)
        await scratch_database[APPROVALS].insert_one(_prompt("apr-2", "acc-mine", 60))
        assert (await _next(mine, "apr-2", seen))["approval_id"] == "apr-2"
        assert seen == {"apr-1", "apr-2"}
        assert others.empty()
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


def _drain(queue: asyncio.Queue) -> list[dict]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


class _Counting(_Switchable):
    """Change streams on; counts the change streams opened and the answers asked of them."""

    def __init__(self, db) -> None:
        super().__init__(db)
        self.change_streams = True
        self.opened = 0
        self.asked = 0

    def __getitem__(self, name: str):
        collection = super().__getitem__(name)
        if name != APPROVALS:
            return collection
        outer = self
        watch = collection.watch

        class _Collection:
            def __getattr__(self, attribute):
                return getattr(collection, attribute)

            async def watch(self, *args, **kwargs):
                changes = await watch(*args, **kwargs)
                outer.opened += 1
                try_next = changes.try_next

                async def counted():
                    outer.asked += 1
                    return await try_next()

                changes.try_next = counted
                return changes

        return _Collection()


async def test_the_feed_asks_nothing_without_a_stream_and_never_in_a_tight_loop(scratch_database):
    """Idle, the feed closes its change stream (the dev database answers an empty one at once, which kept a process
    asking ~17 times a second); the first stream to open starts it again and sees what was queued meanwhile."""
    db = _Counting(scratch_database)
    feed = PromptFeed(db, SystemClock(), poll_s=0.05, retry_s=0.5)
    follower = asyncio.create_task(feed.run())
    try:
        await eventually(lambda: feed.mode == "idle", timeout_s=5, interval_s=0.01)
        assert db.opened == 0
        await scratch_database[APPROVALS].insert_one(_prompt("apr-queued", "acc-late", 60))  # before any stream

        mine = feed.subscribe("acc-late")
        seen: set[str] = set()
        await _next(mine, "apr-queued", seen)  # found by the look at what is pending when the change stream opens
        assert feed.mode == "change-stream" and db.opened == 1
        asked, started = db.asked, asyncio.get_running_loop().time()
        await scratch_database[APPROVALS].insert_one(_prompt("apr-new", "acc-late", 60))
        await _next(mine, "apr-new", seen)
        await asyncio.sleep(1.0)  # a measuring window: how often the empty change stream is asked meanwhile
        rate = (db.asked - asked) / (asyncio.get_running_loop().time() - started)
        assert rate <= 1 / MIN_EMPTY_WAIT_S + 2, rate

        feed.unsubscribe("acc-late", mine)
        await eventually(lambda: feed.mode == "idle", timeout_s=5, interval_s=0.01)
        asked = db.asked
        again = feed.subscribe("acc-late")
        await scratch_database[APPROVALS].insert_one(_prompt("apr-after", "acc-late", 60))
        await _next(again, "apr-after", seen)
        assert db.opened == 2 and db.asked > asked
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

"""New prompts as they are queued, for the live approvals stream (GET /v1/approvals/stream).

One feed per auth process, however many streams are open: it follows the
approvals collection's change stream (inserts only, a few fields of each) and
hands each new pending prompt to the streams open for its account. Prompts
queued by any process reach it — another auth replica, the consumer of
`approval.requested`, a login — since the database, not this process, says
what was inserted.

If the change stream cannot be opened or breaks (a database without change
streams, a failover), the feed polls instead: every `poll_s` it asks, per
account with an open stream, for its pending prompts by the
(account_id, status, expires_at) index, and tries the change stream again
after `retry_s`. Each stream also asks once, by the same index, when it opens
(the prompts already waiting), and each stream deduplicates by prompt id, so
a prompt seen both ways is sent once.

What a stream sends is only the prompt's id, kind and expiry: its content is
fetched by id (GET /v1/approvals/{id}), as before, where it is decrypted for
the device that asks.

The feed follows the collection only while a stream is open in this process:
with none, the change stream is closed (nothing is asked of the database), and
the first stream to open starts it again, with one look at what is pending.
A database that answers an empty change stream at once instead of waiting
`max_await_time_ms` (the dev stack's) is asked again after MIN_EMPTY_WAIT_S,
not in a tight loop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from libs.service.logging import get_logger

from ..collections import APPROVALS

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from libs.clock import Clock

log = get_logger("harbour.auth.approvals.stream")

# The least time between two empty answers of the change stream (a new prompt then waits at most this long).
MIN_EMPTY_WAIT_S = 0.2
PROJECTION = {"_id": 1, "account_id": 1, "request.action": 1, "expires_at": 1, "status": 1}
# What the change stream sends of each insert: the fields a notice needs, never the sealed free text.
PIPELINE = [
    {"$match": {"operationType": "insert"}},
    {"$project": {"operationType": 1, "fullDocument._id": 1, "fullDocument.account_id": 1,
                  "fullDocument.request.action": 1, "fullDocument.expires_at": 1, "fullDocument.status": 1}},
]


def notice(doc: dict[str, Any]) -> dict[str, Any]:
    """What a stream sends of a prompt: its id, kind and expiry."""
    expires_at = doc.get("expires_at")
    return {"approval_id": doc["_id"], "kind": (doc.get("request") or {}).get("action"),
            "expires_at": expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at}


class PromptFeed:
    def __init__(self, db: "AsyncDatabase", clock: "Clock", *, poll_s: float = 0.5, retry_s: float = 5.0) -> None:
        self.db = db
        self.clock = clock
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.listeners: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self.mode = "starting"  # change-stream | polling | idle (no stream open here)
        self._listening = asyncio.Event()  # set while a stream is open in this process

    # -- the streams' side ----------------------------------------------------

    def subscribe(self, account_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self.listeners[account_id].add(queue)
        self._listening.set()
        return queue

    def unsubscribe(self, account_id: str, queue: asyncio.Queue) -> None:
        listeners = self.listeners.get(account_id)
        if listeners is not None:
            listeners.discard(queue)
            if not listeners:
                del self.listeners[account_id]
        if not self.listeners:
            self._listening.clear()

    async def pending(self, account_id: str) -> list[dict[str, Any]]:
        """The account's prompts waiting now, soonest expiry first (by the account_id/status/expires_at index)."""
        docs = await (self.db[APPROVALS]
                      .find({"account_id": account_id, "status": "pending", "expires_at": {"$gt": self.clock.now()}},
                            PROJECTION)
                      .sort("expires_at", 1).limit(100).to_list())
        return [notice(doc) for doc in docs]

    def queued_here(self, doc: dict[str, Any]) -> None:
        """A prompt this process has just committed (`doc` as stored): to its account's streams now, not when the
        change stream next answers — on a database that answers an empty change stream at once (the dev stack's),
        up to MIN_EMPTY_WAIT_S later. The change stream brings it again; each stream sends a prompt id once."""
        if doc.get("status") == "pending" and doc.get("account_id") in self.listeners:
            self._hand_out(doc["account_id"], notice(doc))

    def _hand_out(self, account_id: str, item: dict[str, Any]) -> None:
        for queue in list(self.listeners.get(account_id, ())):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                pass  # a stream that stopped reading: it re-reads the pending ones when it reconnects

    # -- following the collection ---------------------------------------------

    async def run(self) -> None:
        while True:
            if not self.listeners:
                self.mode = "idle"
                await self._listening.wait()
            try:
                await self._follow_changes()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no change streams here, or the stream broke: poll for a while
                log.warning("approvals change stream unavailable; polling", error=type(exc).__name__)
                self.mode = "polling"
                await self._poll_for(self.retry_s)

    async def _follow_changes(self) -> None:
        async with await self.db[APPROVALS].watch(PIPELINE, max_await_time_ms=1000) as changes:
            self.mode = "change-stream"
            # Anything queued while there was no change stream (a restart of it, the polling spell) is found once.
            await self._poll_once()
            loop = asyncio.get_running_loop()
            while self.listeners:  # the last stream closed: the change stream closes too, until the next one opens
                asked = loop.time()
                change = await changes.try_next()
                if change is None:
                    if (rest := MIN_EMPTY_WAIT_S - (loop.time() - asked)) > 0:
                        await asyncio.sleep(rest)
                    continue
                doc = change.get("fullDocument") or {}
                if doc.get("status") == "pending" and doc.get("account_id") in self.listeners:
                    self._hand_out(doc["account_id"], notice(doc))

    async def _poll_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until and self.listeners:
            try:
                await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("polling the approvals failed", error=type(exc).__name__)
            await asyncio.sleep(self.poll_s)

    async def _poll_once(self) -> None:
        for account_id in list(self.listeners):
            for item in await self.pending(account_id):
                self._hand_out(account_id, item)

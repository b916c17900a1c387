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
not in a tight loop. (That machinery is libs/store/change_feed.py's, which
notify's inbox stream uses too; here each insert is handed out as a notice.)
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from libs.store.change_feed import ChangeFeed

from ..collections import APPROVALS

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from libs.clock import Clock

# The least time between two empty answers of the change stream (a new prompt then waits at most this long).
MIN_EMPTY_WAIT_S = 0.2
PROJECTION = {"_id": 1, "account_id": 1, "request.action": 1, "expires_at": 1, "status": 1}


def notice(doc: dict[str, Any]) -> dict[str, Any]:
    """What a stream sends of a prompt: its id, kind and expiry."""
    expires_at = doc.get("expires_at")
    return {"approval_id": doc["_id"], "kind": (doc.get("request") or {}).get("action"),
            "expires_at": expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at}


class PromptFeed(ChangeFeed[asyncio.Queue]):
    """The approvals collection's inserts (libs/store/change_feed.py), each pending prompt handed to the queues of
    the streams open for its account as a notice; where there is no change stream, every open account's pending
    prompts are read instead, each poll."""

    def __init__(self, db: "AsyncDatabase", clock: "Clock", *, poll_s: float = 0.5, retry_s: float = 5.0) -> None:
        # What the change stream sends of each insert: the fields a notice needs, never the sealed free text.
        super().__init__(db[APPROVALS], "account_id", fields=("_id", "request.action", "expires_at", "status"),
                         poll_s=poll_s, retry_s=retry_s, min_empty_wait_s=MIN_EMPTY_WAIT_S)
        self.db = db
        self.clock = clock

    def _new_waiter(self) -> asyncio.Queue:
        return asyncio.Queue(maxsize=1000)

    async def pending(self, account_id: str) -> list[dict[str, Any]]:
        """The account's prompts waiting now, soonest expiry first (by the account_id/status/expires_at index)."""
        docs = await (self.db[APPROVALS]
                      .find({"account_id": account_id, "status": "pending", "expires_at": {"$gt": self.clock.now()}},
                            PROJECTION)
                      .sort("expires_at", 1).limit(100).to_list())
        return [notice(doc) for doc in docs]

    def inserted(self, doc: dict[str, Any]) -> None:
        if doc.get("status") == "pending" and doc.get("account_id") in self.waiters:
            self._hand_out(doc["account_id"], notice(doc))

    def queued_here(self, doc: dict[str, Any]) -> None:
        """A prompt this process has just committed (`doc` as stored): to its account's streams now, not when the
        change stream next answers — on a database that answers an empty change stream at once (the dev stack's),
        up to MIN_EMPTY_WAIT_S later. The change stream brings it again; each stream sends a prompt id once."""
        self.inserted(doc)

    async def look_everywhere(self) -> None:
        """What is pending for every open account (the change stream (re)opened, or there is none): each stream
        deduplicates by id."""
        for account_id in list(self.waiters):
            for item in await self.pending(account_id):
                self._hand_out(account_id, item)

    def _hand_out(self, account_id: str, item: dict[str, Any]) -> None:
        for queue in list(self.waiters.get(account_id, ())):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                pass  # a stream that stopped reading: it re-reads the pending ones when it reconnects

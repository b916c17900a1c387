"""A retry queue in a MongoDB collection: work for an outside party, tried until it is taken, with exponential back-off.

notify's pushes (to the push provider) and status callbacks (to agencies'
URLs) wait in one each. A queued document carries, next to its payload:

  state            pending, then the queue's `done` state (taken) or its `given_up` state
  attempts         how many times it has been claimed
  next_attempt_at  when it is due; claiming moves it a lease ahead, so the claim of a
                   sender that died expires and the document is tried again
  last_error       why the last attempt failed, when the sender said

Attempt n that fails waits `first_wait_s * 2**(n-1)` seconds; the failure
of attempt `max_attempts` gives the document up. Claims are safe with
several senders: a document is claimed by the one whose update matched it
while still due. Every method takes the instant (`now`) from the caller's
clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from libs.store import chunks

PENDING = "pending"


@dataclass(frozen=True)
class Backoff:
    first_wait_s: float
    max_attempts: int

    def wait_after(self, attempts: int) -> timedelta:
        """How long a document waits after its `attempts`-th attempt failed."""
        return timedelta(seconds=self.first_wait_s * 2 ** (attempts - 1))


@dataclass(frozen=True)
class Failure:
    """A claimed document that was not taken, and why (None when the sender could not say)."""

    doc: dict[str, Any]
    error: str | None = None


class RetryQueue:
    def __init__(self, collection: AsyncCollection, backoff: Backoff, *, done: str, given_up: str, lease_s: float) -> None:
        self.collection = collection
        self.backoff = backoff
        self.done, self.given_up = done, given_up
        self.lease = timedelta(seconds=lease_s)

    @staticmethod
    def queued(now: datetime) -> dict[str, Any]:
        """The queue's fields of a new document, due at once."""
        return {"state": PENDING, "attempts": 0, "next_attempt_at": now}

    async def claim_due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` due documents, claimed for this sender (attempts counted, due again only when the lease ends)."""
        due = {"state": PENDING, "next_attempt_at": {"$lte": now}}
        ids = [doc["_id"] for doc in await self.collection.find(due, {"_id": 1}).limit(limit).to_list()]
        claim = secrets.token_hex(8)
        claimed: list[dict[str, Any]] = []
        for chunk in chunks(ids):
            await self.collection.update_many({"_id": {"$in": chunk}, **due},
                                              {"$set": {"next_attempt_at": now + self.lease, "claim": claim}, "$inc": {"attempts": 1}})
            claimed += await self.collection.find({"_id": {"$in": chunk}, "claim": claim}).to_list()
        return claimed

    async def succeeded(self, ids: list[str], fields: dict[str, Any] | None = None) -> None:
        """These claimed documents were taken: `done`, with the caller's `fields` (e.g. when)."""
        for chunk in chunks(ids):
            await self.collection.update_many({"_id": {"$in": chunk}},
                                              {"$set": {"state": self.done, **(fields or {})}})

    async def failed(self, failure: Failure, now: datetime) -> bool:
        """A claimed document was not taken: due again after its back-off, or given up. True when given up."""
        doc = failure.doc
        error = {"last_error": failure.error} if failure.error is not None else {}
        if doc["attempts"] >= self.backoff.max_attempts:
            await self.collection.update_one({"_id": doc["_id"]}, {"$set": {"state": self.given_up, **error}})
            return True
        await self.collection.update_one({"_id": doc["_id"]}, {"$set": {
            "next_attempt_at": now + self.backoff.wait_after(doc["attempts"]), **error}})
        return False

    async def backlog(self) -> int:
        """Documents still waiting (due or backing off)."""
        return await self.collection.count_documents({"state": PENDING})

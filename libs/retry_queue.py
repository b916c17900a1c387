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
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from libs.store import chunks

PENDING = "pending"


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


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
        """Up to `limit` due documents, claimed for this sender (attempts counted, due again only when the lease ends).

        The due ones are found through the (state, next_attempt_at) index; the claim reads them again by `_id` in a
        transaction, keeps those still due and moves them by `_id` alone (a filter the local database serves from
        the `_id` index, unlike `_id` plus conditions): a sender claiming the same document at once conflicts, and
        its retry finds it claimed.
        """
        due = {"state": PENDING, "next_attempt_at": {"$lte": now}}
        ids = [doc["_id"] for doc in await self.collection.find(due, {"_id": 1}).limit(limit).to_list()]
        if not ids:
            return []
        claim = secrets.token_hex(8)
        lease_end = now + self.lease

        async def work(session: AsyncClientSession) -> list[dict[str, Any]]:
            claimed = []
            for chunk in chunks(ids):
                async for doc in self.collection.find({"_id": {"$in": chunk}}, session=session):
                    if doc.get("state") == PENDING and _aware(doc["next_attempt_at"]) <= _aware(now):
                        claimed.append(doc | {"next_attempt_at": lease_end, "claim": claim, "attempts": doc.get("attempts", 0) + 1})
            if claimed:
                await self.collection.bulk_write([UpdateOne({"_id": doc["_id"]}, {"$set": {"next_attempt_at": lease_end, "claim": claim},
                                                                                   "$inc": {"attempts": 1}}) for doc in claimed],
                                                 ordered=False, session=session)
            return claimed

        async with self.collection.database.client.start_session() as session:
            return await session.with_transaction(work)

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

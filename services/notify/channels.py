"""The push channel behind an adapter interface: the dispatcher hands a push over; a provider delivers it.

`LocalPushAdapter` records each push in the database (`push_log`, encrypted),
which is what the local platform and the tests use. A real provider (APNs,
FCM, an SMS gateway) implements `PushAdapter.send` for a batch, returning
the pushes the provider refused (or raising `PushFailed` when it is
unreachable); the dispatcher retries those with exponential back-off
(libs/retry_queue.py).

A delivered chunk's pushes wait as one document (`push_batches`, written in
the chunk's transaction, the pushes sealed together): the sender claims it,
hands them to the provider in one call and marks it sent — two writes for
500 pushes rather than three per push. A provider that is unreachable has
the whole batch retried; the pushes it refuses become documents of their
own in `pushes`, retried one by one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs.clock import Clock
from libs.crypto import FieldCipher
from libs.retry_queue import Backoff, Failure, RetryQueue

from .collections import PUSH_BATCHES, PUSH_LOG, PUSHES
from .metrics import CHANNEL_DELIVERIES
from .statuses import PushState

# A claimed batch is due again after this long if its sender died before recording the outcome.
PUSH_LEASE_S = 30.0


class PushFailed(Exception):
    """The provider did not take the push; worth retrying later."""


@dataclass(frozen=True)
class Push:
    push_id: str
    account_id: str
    title: str
    body: str
    priority: str
    notification_id: str


class PushAdapter(Protocol):
    name: str

    async def send(self, pushes: list[Push]) -> set[str]:
        """Hand over a batch of pushes; return the ids of those the provider refused or could not take (retried)."""
        ...


class LocalPushAdapter:
    """Records what a phone would receive; idempotent per push id, so a retried push is recorded once."""

    name = "local"

    def __init__(self, db: AsyncDatabase, cipher: FieldCipher, clock: Clock) -> None:
        self.collection = db[PUSH_LOG]
        self.cipher = cipher
        self.clock = clock

    async def send(self, pushes: list[Push]) -> set[str]:
        now = self.clock.now()
        docs = [{"_id": p.push_id, "account_id": p.account_id, "notification_id": p.notification_id, "priority": p.priority,
                 "sealed": self.cipher.encrypt_record({"title": p.title, "body": p.body}, record_id=p.push_id), "sent_at": now}
                for p in pushes]
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise  # anything but "already recorded" is a real failure
        return set()


def adapter_for(name: str, db: AsyncDatabase, cipher: FieldCipher, clock: Clock) -> PushAdapter:
    if name == "local":
        return LocalPushAdapter(db, cipher, clock)
    raise ValueError(f"unknown push adapter {name!r} (HARBOUR_NOTIFY_PUSH_ADAPTER)")


def batch_id(pushes: list[Push]) -> str:
    """The same pushes make the same batch (a redelivered chunk finds the one it wrote before)."""
    return "psb-" + hashlib.sha256("\n".join(sorted(p.push_id for p in pushes)).encode()).hexdigest()[:32]


def push_batch(cipher: FieldCipher, pushes: list[Push], now: datetime) -> dict[str, Any]:
    """A chunk's pushes as one queue document, sealed together."""
    doc_id = batch_id(pushes)
    return {"_id": doc_id, "notification_ids": [p.notification_id for p in pushes], "count": len(pushes),
            "sealed": cipher.encrypt_record({"pushes": json.dumps([asdict(p) for p in pushes])}, record_id=doc_id),
            **RetryQueue.queued(now), "created_at": now}


def batch_queue(db: AsyncDatabase, *, max_attempts: int, backoff_s: float) -> RetryQueue:
    """Delivered chunks' pushes; a batch whose provider was unreachable waits backoff * 2**(attempt-1) s."""
    return RetryQueue(db[PUSH_BATCHES], Backoff(backoff_s, max_attempts), done=PushState.SENT, given_up=PushState.FAILED,
                      lease_s=PUSH_LEASE_S)


def push_queue(db: AsyncDatabase, *, max_attempts: int, backoff_s: float) -> RetryQueue:
    """Pushes waiting for the provider: a refused one waits backoff * 2**(attempt-1) s; after max_attempts it is failed."""
    return RetryQueue(db[PUSHES], Backoff(backoff_s, max_attempts), done=PushState.SENT, given_up=PushState.FAILED, lease_s=PUSH_LEASE_S)


async def send_due_pushes(queue: RetryQueue, cipher: FieldCipher, adapter: PushAdapter, clock: Clock, *, limit: int = 500) -> int:
    """Hand due pushes to the adapter in one batch; the ones it refuses are retried later (or failed), the rest are sent.

    The notification stays `delivered` either way: the inbox holds the message; push is the doorbell.
    """
    due = await queue.claim_due(clock.now(), limit)
    if not due:
        return 0
    pushes = []
    for doc in due:
        opened = cipher.decrypt_record(doc["sealed"], record_id=doc["_id"])
        pushes.append(Push(push_id=doc["_id"], account_id=doc["account_id"], title=opened["title"], body=opened["body"],
                           priority=doc["priority"], notification_id=doc["notification_id"]))
    try:
        refused = await adapter.send(pushes)
    except PushFailed:
        refused = {p.push_id for p in pushes}
    now = clock.now()
    sent = [d["_id"] for d in due if d["_id"] not in refused]
    await queue.succeeded(sent, {"sent_at": now})
    CHANNEL_DELIVERIES.labels("push", "delivered").inc(len(sent))
    for doc in (d for d in due if d["_id"] in refused):
        given_up = await queue.failed(Failure(doc), now)
        CHANNEL_DELIVERIES.labels("push", "failed" if given_up else "retry").inc()
    return len(due)


def _retry_doc(cipher: FieldCipher, push: Push, queue: RetryQueue, now: datetime) -> dict[str, Any]:
    """A push of a batch that the provider refused: a document of its own in the push queue, its first attempt counted."""
    return {"_id": push.push_id, "notification_id": push.notification_id, "account_id": push.account_id, "priority": push.priority,
            "sealed": cipher.encrypt_record({"title": push.title, "body": push.body}, record_id=push.push_id),
            "state": PushState.PENDING, "attempts": 1, "next_attempt_at": now + queue.backoff.wait_after(1), "created_at": now}


async def send_due_push_batches(batches: RetryQueue, pushes: RetryQueue, cipher: FieldCipher, adapter: PushAdapter, clock: Clock,
                                *, limit: int = 20) -> int:
    """Hand each due batch to the adapter in one call; refused pushes go to the push queue, an unreachable provider retries the batch."""
    due = await batches.claim_due(clock.now(), limit)
    for doc in due:
        batch = [Push(**p) for p in json.loads(cipher.decrypt_record(doc["sealed"], record_id=doc["_id"])["pushes"])]
        try:
            refused = await adapter.send(batch)
        except PushFailed:
            given_up = await batches.failed(Failure(doc, "provider unreachable"), clock.now())
            CHANNEL_DELIVERIES.labels("push", "failed" if given_up else "retry").inc(len(batch))
            continue
        now = clock.now()
        retries = [_retry_doc(cipher, p, pushes, now) for p in batch if p.push_id in refused]
        if retries:
            try:
                await pushes.collection.insert_many(retries, ordered=False)
            except BulkWriteError as exc:  # a batch claimed again after its sender died: those are queued already
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise
        await batches.succeeded([doc["_id"]], {"sent_at": now})
        CHANNEL_DELIVERIES.labels("push", "delivered").inc(len(batch) - len(retries))
        CHANNEL_DELIVERIES.labels("push", "retry").inc(len(retries))
    return len(due)

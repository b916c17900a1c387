"""The push channel behind an adapter interface: the dispatcher hands a push over; a provider delivers it.

`LocalPushAdapter` records each push in the database (`push_log`, encrypted),
which is what the local platform and the tests use. A real provider (APNs,
FCM, an SMS gateway) implements `PushAdapter.send` for a batch, returning
the pushes the provider refused (or raising `PushFailed` when it is
unreachable); the dispatcher retries those with exponential back-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from libs.crypto import FieldCipher

from .metrics import CHANNEL_DELIVERIES
from .collections import PUSHES, chunks

PUSH_LOG = "push_log"


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

    def __init__(self, db: AsyncDatabase, cipher: FieldCipher) -> None:
        self.collection = db[PUSH_LOG]
        self.cipher = cipher

    async def send(self, pushes: list[Push]) -> set[str]:
        now = datetime.now(UTC)
        docs = [{"_id": p.push_id, "account_id": p.account_id, "notification_id": p.notification_id, "priority": p.priority,
                 "sealed": self.cipher.encrypt_record({"title": p.title, "body": p.body}, record_id=p.push_id), "sent_at": now}
                for p in pushes]
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise  # anything but "already recorded" is a real failure
        return set()


def adapter_for(name: str, db: AsyncDatabase, cipher: FieldCipher) -> PushAdapter:
    if name == "local":
        return LocalPushAdapter(db, cipher)
    raise ValueError(f"unknown push adapter {name!r} (HARBOUR_NOTIFY_PUSH_ADAPTER)")


async def send_due_pushes(db: AsyncDatabase, cipher: FieldCipher, adapter: PushAdapter, *, max_attempts: int, backoff_s: float,
                          limit: int = 500) -> int:
    """Hand due pushes to the adapter in one batch; a refused one waits backoff * 2**(attempt-1) s, after max_attempts it is failed.

    The notification stays `delivered` either way: the inbox holds the message; push is the doorbell.
    """
    now = datetime.now(UTC)
    due = await db[PUSHES].find({"state": "pending", "next_attempt_at": {"$lte": now}}).limit(limit).to_list()
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
    sent = [d["_id"] for d in due if d["_id"] not in refused]
    for chunk in chunks(sent):
        await db[PUSHES].update_many({"_id": {"$in": chunk}}, {"$set": {"state": "sent", "sent_at": datetime.now(UTC)}, "$inc": {"attempts": 1}})
    CHANNEL_DELIVERIES.labels("push", "delivered").inc(len(sent))
    for doc in (d for d in due if d["_id"] in refused):
        attempts = doc["attempts"] + 1
        if attempts >= max_attempts:
            CHANNEL_DELIVERIES.labels("push", "failed").inc()
            await db[PUSHES].update_one({"_id": doc["_id"]}, {"$set": {"state": "failed", "attempts": attempts}})
        else:
            CHANNEL_DELIVERIES.labels("push", "retry").inc()
            await db[PUSHES].update_one({"_id": doc["_id"]}, {"$set": {
                "attempts": attempts, "next_attempt_at": now + timedelta(seconds=backoff_s * 2 ** (attempts - 1))}})
    return len(due)

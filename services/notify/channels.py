"""The push channel behind an adapter interface: the dispatcher hands a push over; a provider delivers it.

`LocalPushAdapter` records each push in the database (`push_log`, encrypted),
which is what the local platform and the tests use. A real provider (APNs,
FCM, an SMS gateway) implements `PushAdapter.send` and raises
`PushFailed` when the provider refuses or is unreachable; the dispatcher
retries with exponential back-off (dispatcher.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto import FieldCipher

from .metrics import CHANNEL_DELIVERIES
from .store import PUSHES

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

    async def send(self, push: Push) -> None: ...


class LocalPushAdapter:
    """Records what a phone would receive; idempotent per push id, so a retried push is recorded once."""

    name = "local"

    def __init__(self, db: AsyncDatabase, cipher: FieldCipher) -> None:
        self.collection = db[PUSH_LOG]
        self.cipher = cipher

    async def send(self, push: Push) -> None:
        sealed = self.cipher.encrypt_record({"title": push.title, "body": push.body}, record_id=push.push_id)
        await self.collection.update_one(
            {"_id": push.push_id},
            {"$setOnInsert": {"account_id": push.account_id, "notification_id": push.notification_id, "priority": push.priority,
                              "sealed": sealed, "sent_at": datetime.now(UTC)}},
            upsert=True)


def adapter_for(name: str, db: AsyncDatabase, cipher: FieldCipher) -> PushAdapter:
    if name == "local":
        return LocalPushAdapter(db, cipher)
    raise ValueError(f"unknown push adapter {name!r} (HARBOUR_NOTIFY_PUSH_ADAPTER)")


async def send_due_pushes(db: AsyncDatabase, cipher: FieldCipher, adapter: PushAdapter, *, max_attempts: int, backoff_s: float,
                          limit: int = 200) -> int:
    """Hand due pushes to the adapter; a failure waits backoff * 2**(attempt-1) s, and after max_attempts the push is failed.

    The notification stays `delivered` either way: the inbox holds the message; push is the doorbell.
    """
    now = datetime.now(UTC)
    due = await db[PUSHES].find({"state": "pending", "next_attempt_at": {"$lte": now}}).sort("next_attempt_at", 1).limit(limit).to_list()
    for doc in due:
        opened = cipher.decrypt_record(doc["sealed"], record_id=doc["_id"])
        push = Push(push_id=doc["_id"], account_id=doc["account_id"], title=opened["title"], body=opened["body"],
                    priority=doc["priority"], notification_id=doc["notification_id"])
        attempts = doc["attempts"] + 1
        try:
            await adapter.send(push)
        except PushFailed:
            if attempts >= max_attempts:
                CHANNEL_DELIVERIES.labels("push", "failed").inc()
                await db[PUSHES].update_one({"_id": doc["_id"]}, {"$set": {"state": "failed", "attempts": attempts}})
            else:
                CHANNEL_DELIVERIES.labels("push", "retry").inc()
                await db[PUSHES].update_one({"_id": doc["_id"]}, {"$set": {
                    "attempts": attempts, "next_attempt_at": now + timedelta(seconds=backoff_s * 2 ** (attempts - 1))}})
            continue
        CHANNEL_DELIVERIES.labels("push", "delivered").inc()
        await db[PUSHES].update_one({"_id": doc["_id"]}, {"$set": {"state": "sent", "attempts": attempts, "sent_at": datetime.now(UTC)}})
    return len(due)

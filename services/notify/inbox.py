"""The citizen's in-app inbox: list, read, and the items the live stream sends.

Items are written by the dispatcher only; messages are decrypted here for
their owner. Reading an agency's message moves its notification to `read`,
which the agency learns through its topic and callback.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.client_session import AsyncClientSession

from . import progress, status_events
from .callers import Citizen
from .context import Notify
from .errors import NotFound
from .metrics import NOTIFICATION_OUTCOMES
from .collections import INBOX, NOTIFICATIONS
from .statuses import NOTIFICATION, NotificationStatus


class InboxItem(BaseModel):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)
    id: str
    notification_id: str
    from_: str = Field(alias="from", description="the agency's name, or Harbour ID for platform messages")
    client_id: str | None
    kind: Literal["agency", "platform"]
    priority: Literal["normal", "high"]
    language: str
    subject: str
    body: str
    delivered_at: str
    read_at: str | None


class Inbox(BaseModel):
    messages: list[InboxItem]


def view(notify: Notify, doc: dict[str, Any]) -> InboxItem:
    opened = notify.cipher.decrypt_record(doc["sealed"], record_id=doc["_id"])
    return InboxItem(id=doc["_id"], notification_id=doc["notification_id"], from_=doc["client_name"], client_id=doc["client_id"],
                     kind=doc["kind"], priority=doc["priority"], language=doc["language"], subject=opened["subject"],
                     body=opened["body"], delivered_at=doc["delivered_at"].isoformat(),
                     read_at=doc["read_at"].isoformat() if doc.get("read_at") else None)


async def list_items(notify: Notify, citizen: Citizen, *, unread_only: bool = False, limit: int = 50) -> Inbox:
    query: dict[str, Any] = {"account_id": citizen.account_id}
    if unread_only:
        query["read_at"] = None
    docs = await notify.db[INBOX].find(query).sort("delivered_at", -1).limit(limit).to_list()
    return Inbox(messages=[view(notify, d) for d in docs])


async def delivered_since(notify: Notify, account_id: str, since: datetime) -> list[InboxItem]:
    """For the live stream: items delivered at or after `since`, oldest first."""
    docs = await notify.db[INBOX].find({"account_id": account_id, "delivered_at": {"$gte": since}}).sort("delivered_at", 1).limit(200).to_list()
    return [view(notify, d) for d in docs]


async def mark_read(notify: Notify, citizen: Citizen, item_id: str) -> InboxItem:
    now = notify.clock.now()

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        item = await notify.db[INBOX].find_one({"_id": item_id, "account_id": citizen.account_id}, session=session)
        if item is None:
            raise NotFound("no such message in your inbox")
        if item.get("read_at"):
            return item  # reading twice is reading once
        await notify.db[INBOX].update_one({"_id": item_id}, {"$set": {"read_at": now}}, session=session)
        item["read_at"] = now
        # Read by _id, checked here, written by _id (no findAndModify: the local database serves it from no index);
        # the transaction makes a concurrent change to it conflict.
        notification = await notify.db[NOTIFICATIONS].find_one({"_id": item["notification_id"]}, session=session)
        if notification is not None and NOTIFICATION.allows(notification["status"], NotificationStatus.READ):
            await notify.db[NOTIFICATIONS].update_one({"_id": notification["_id"]}, {"$set": {
                "status": NotificationStatus.READ, "updated_at": now, f"timeline.{NotificationStatus.READ}": now}}, session=session)
            NOTIFICATION_OUTCOMES.labels(NotificationStatus.READ, notification["kind"]).inc()
            await progress.count(notify.db, session, [notification], NotificationStatus.READ)
            await status_events.announce(notify, session, [notification], NotificationStatus.READ, now)
            await notify.audit(session, subject=citizen.account_id, action="notification.read", actor=citizen.device_id,
                               notification_id=notification["_id"])
        return item

    return view(notify, await notify.transaction(work))

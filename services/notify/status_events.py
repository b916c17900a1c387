"""Telling the agency: each status change of its notification goes to its own topic (if it subscribed,
`agency_events`) and, if it registered one, its callback.

Both are written in the transaction that changes the status: the event
through the outbox (`agency.<client_id>.events`, with the agency's pairwise
`sub` and never an account id; one event lists every notification of a
delivered chunk, so a 10,000 batch is 20 events, not 10,000), the callback
(one per notification) as a document the dispatcher's callback sender
delivers with retries (callbacks.py). Platform messages
(approval prompts, security alerts) belong to no agency and announce nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.background import wake_up
from libs.events import agency_topic
from libs.projections import agency_subscribers
from libs.retry_queue import RetryQueue

from .collections import CALLBACK_URLS, CALLBACKS, TIMED_WORK
from .context import Notify
from .statuses import REPORTED, NotificationStatus

ANNOUNCED = REPORTED


def payload(doc: dict[str, Any], status: NotificationStatus, at: datetime) -> dict[str, Any]:
    data = {"notification_id": doc["_id"], "status": status, "sub": doc["sub"], "reference": doc.get("reference"),
            "template_id": doc["template_id"], "template_version": doc["template_version"], "job_id": doc.get("job_id"),
            "at": at.isoformat()}
    if doc.get("reason") and status == NotificationStatus.FAILED:
        data["reason"] = doc["reason"]
    if doc.get("channel"):  # which channel beside the inbox carried it (inbox, push, email, sms), once chosen
        data["channel"] = doc["channel"]
    return data


async def announce(notify: Notify, session: AsyncClientSession, docs: list[dict[str, Any]], status: NotificationStatus,
                   at: datetime) -> None:
    """One `notification.status_changed` event per agency and status change: a list, so a 500-notification chunk is one event."""
    agency_docs = [d for d in docs if d["kind"] == "agency" and d.get("client_id")]
    if not agency_docs or status not in ANNOUNCED:
        return
    by_client: dict[str, list[dict[str, Any]]] = {}
    for doc in agency_docs:
        by_client.setdefault(doc["client_id"], []).append(doc)
    # The topic only for agencies that subscribed (`agency_events`); the callback below regardless.
    subscribed = await agency_subscribers(notify.db, by_client, session=session)
    events = [(agency_topic(client_id), notify.event("notification.status_changed", client_docs[0]["_id"], {
        "client_id": client_id, "status": status, "at": at.isoformat(), "notifications": [payload(d, status, at) for d in client_docs]}))
        for client_id, client_docs in by_client.items() if client_id in subscribed]
    if events:
        await notify.publish_many(session, events)
    urls = {row["_id"]: row["url"] async for row in notify.db[CALLBACK_URLS].find({"_id": {"$in": sorted(by_client)}}, session=session)}
    callbacks = [{"_id": f"{d['_id']}:{status}", "client_id": d["client_id"], "url": urls[d["client_id"]],
                  "payload": payload(d, status, at), **RetryQueue.queued(at), "created_at": at}
                 for d in agency_docs if d["client_id"] in urls]
    if callbacks:
        await notify.db[CALLBACKS].insert_many(callbacks, ordered=False, session=session)
        wake_up(TIMED_WORK)

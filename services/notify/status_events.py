"""Telling the agency: each status change of its notification goes to its own topic and, if it registered one, its callback.

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
from pymongo.asynchronous.database import AsyncDatabase

from libs.events import CloudEvent, Outbox, agency_topic

from .collections import CALLBACK_URLS, CALLBACKS

ANNOUNCED = ("delivered", "failed", "suppressed", "read")


def payload(doc: dict[str, Any], status: str, at: datetime) -> dict[str, Any]:
    data = {"notification_id": doc["_id"], "status": status, "sub": doc["sub"], "reference": doc.get("reference"),
            "template_id": doc["template_id"], "template_version": doc["template_version"], "job_id": doc.get("job_id"),
            "at": at.isoformat()}
    if doc.get("reason") and status == "failed":
        data["reason"] = doc["reason"]
    return data


async def announce(db: AsyncDatabase, session: AsyncClientSession, docs: list[dict[str, Any]], status: str, at: datetime) -> None:
    """One `notification.status_changed` event per agency and status change: a list, so a 500-notification chunk is one event."""
    agency_docs = [d for d in docs if d["kind"] == "agency" and d.get("client_id")]
    if not agency_docs or status not in ANNOUNCED:
        return
    by_client: dict[str, list[dict[str, Any]]] = {}
    for doc in agency_docs:
        by_client.setdefault(doc["client_id"], []).append(doc)
    await Outbox(db).add_many(session, [
        (agency_topic(client_id), CloudEvent(source="/notify", type="notification.status_changed", subject=client_docs[0]["_id"],
                                             data={"client_id": client_id, "status": status, "at": at.isoformat(),
                                                   "notifications": [payload(d, status, at) for d in client_docs]}))
        for client_id, client_docs in by_client.items()])
    urls = {row["_id"]: row["url"] async for row in db[CALLBACK_URLS].find({"_id": {"$in": sorted(by_client)}}, session=session)}
    callbacks = [{"_id": f"{d['_id']}:{status}", "client_id": d["client_id"], "url": urls[d["client_id"]],
                  "payload": payload(d, status, at), "state": "pending", "attempts": 0, "next_attempt_at": at, "created_at": at}
                 for d in agency_docs if d["client_id"] in urls]
    if callbacks:
        await db[CALLBACKS].insert_many(callbacks, ordered=False, session=session)

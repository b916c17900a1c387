"""Delivering a chunk of notifications: render in the citizen's language, into the inbox, onto the push channel.

Runs inside the dispatcher's consumer transaction (one per dispatch event),
so a dispatcher killed half-way leaves nothing behind and the redelivered
event does the whole chunk again; the unique inbox index on
`notification_id` backs that up. Only notifications still `sending` are
touched, so a redelivery after a commit changes nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import Outbox

from . import platform_messages, progress, status_events, templates
from .context import Notify
from .metrics import CHANNEL_DELIVERIES, DISPATCH_LATENCY, NOTIFICATION_OUTCOMES, REDISPATCHED
from .notifications import dispatch_event, job_event
from .preferences import DEFAULT_CHANNELS, quiet_until
from .collections import ACCOUNTS, INBOX, JOBS, NOTIFICATIONS, PREFERENCES, PUSHES, TEMPLATES, chunks


def _inbox_id(notification_id: str) -> str:
    return "msg-" + notification_id.removeprefix("ntf-")


def _push_id(notification_id: str) -> str:
    return "psh-" + notification_id.removeprefix("ntf-")


def _language(prefs: dict[str, Any], account: dict[str, Any]) -> str:
    return prefs.get("language") or account.get("language") or "en"


async def _by_id(collection, ids: list[str], session: AsyncClientSession, **query: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(ids):
        async for doc in collection.find({"_id": {"$in": chunk}, **query}, session=session):
            found[doc["_id"]] = doc
    return found


async def deliver(notify: Notify, session: AsyncClientSession, ids: list[str]) -> dict[str, int]:
    db = notify.db
    now = datetime.now(UTC)
    docs = list((await _by_id(db[NOTIFICATIONS], ids, session, status="sending")).values())
    if not docs:
        return {}
    account_ids = sorted({d["account_id"] for d in docs if d["account_id"]})
    accounts = await _by_id(db[ACCOUNTS], account_ids, session)
    prefs = await _by_id(db[PREFERENCES], account_ids, session)
    template_docs = await _by_id(db[TEMPLATES], sorted({f"{d['template_id']}:{d['template_version']}" for d in docs if d["template_id"]}), session)

    # Items an interrupted earlier attempt already wrote (a database without rollback keeps them): not written twice.
    # Both ids derive from the notification's, so the look-up goes by _id (the fast path).
    in_inbox = {d["notification_id"] for d in (await _by_id(db[INBOX], [_inbox_id(d["_id"]) for d in docs], session)).values()}
    pushed = {d["notification_id"] for d in (await _by_id(db[PUSHES], [_push_id(d["_id"]) for d in docs], session)).values()}

    outcome: dict[str, list[dict[str, Any]]] = defaultdict(list)
    deferred: list[tuple[dict[str, Any], datetime]] = []
    inbox_items: list[dict[str, Any]] = []
    pushes: list[dict[str, Any]] = []
    for doc in docs:
        account = accounts.get(doc["account_id"] or "")
        pref = prefs.get(doc["account_id"] or "", {})
        if account is None or account.get("state") not in ("active", None):
            doc["reason"] = "recipient-inactive" if account else "recipient-unknown"
            outcome["failed"].append(doc)
            continue
        if doc["kind"] == "agency" and doc["client_id"] in pref.get("opted_out", []):
            outcome["suppressed"].append(doc)
            continue
        if doc["priority"] != "high" and (until := quiet_until(pref.get("quiet_hours"), now)):
            deferred.append((doc, until))
            continue
        template = platform_messages.message(doc["platform_message"]) if doc["kind"] == "platform" else template_docs.get(f"{doc['template_id']}:{doc['template_version']}")
        values = json.loads(notify.cipher.decrypt_record(doc["sealed"], record_id=doc["_id"])["personalisation"])
        try:
            if template is None:
                raise templates.RenderError("render-error", "template gone")
            subject, body, language = templates.render(template, _language(pref, account), values)
        except templates.RenderError as exc:
            # render-limit-exceeded: the values made the message go over a rendering bound (never a huge inbox item).
            doc["reason"] = exc.reason
            outcome["failed"].append(doc)
            continue
        outcome["delivered"].append(doc)
        if doc["_id"] in in_inbox:
            continue
        item_id = _inbox_id(doc["_id"])
        inbox_items.append({"_id": item_id, "notification_id": doc["_id"], "account_id": doc["account_id"], "kind": doc["kind"],
                            "client_id": doc["client_id"], "client_name": doc["client_name"], "priority": doc["priority"],
                            "language": language, "sealed": notify.cipher.encrypt_record({"subject": subject, "body": body}, record_id=item_id),
                            "delivered_at": now, "read_at": None})
        if "push" in pref.get("channels", DEFAULT_CHANNELS) and doc["_id"] not in pushed:
            push_id = _push_id(doc["_id"])
            pushes.append({"_id": push_id, "notification_id": doc["_id"], "account_id": doc["account_id"], "priority": doc["priority"],
                           "sealed": notify.cipher.encrypt_record({"title": subject, "body": body}, record_id=push_id),
                           "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now})

    if inbox_items:
        await db[INBOX].insert_many(inbox_items, session=session)
    if pushes:
        await db[PUSHES].insert_many(pushes, session=session)
    for status, changed in outcome.items():
        await _set_status(notify, session, changed, status, now)
    if deferred:
        await db[NOTIFICATIONS].bulk_write([UpdateOne({"_id": d["_id"], "status": "sending"}, {"$set": {
            "status": "created", "due_at": until, "updated_at": now, "deferred": "quiet-hours"}}) for d, until in deferred],
            ordered=False, session=session)
    for doc in outcome.get("delivered", []):
        DISPATCH_LATENCY.observe(max(0.0, (now - doc["due_at"]).total_seconds()))
    CHANNEL_DELIVERIES.labels("inbox", "delivered").inc(len(inbox_items))
    return {status: len(changed) for status, changed in outcome.items()} | {"deferred": len(deferred)}


async def _set_status(notify: Notify, session: AsyncClientSession, docs: list[dict[str, Any]], status: str, now: datetime) -> None:
    if not docs:
        return
    with_reason = [d for d in docs if d.get("reason")]
    plain = [d["_id"] for d in docs if not d.get("reason")]
    update = {"status": status, "updated_at": now, f"timeline.{status}": now}
    for chunk in chunks(plain):
        await notify.db[NOTIFICATIONS].update_many({"_id": {"$in": chunk}, "status": "sending"}, {"$set": update}, session=session)
    if with_reason:
        await notify.db[NOTIFICATIONS].bulk_write([UpdateOne({"_id": d["_id"], "status": "sending"}, {"$set": {**update, "reason": d["reason"]}})
                                                   for d in with_reason], ordered=False, session=session)
    await progress.count(notify.db, session, docs, status)
    for kind in ("agency", "platform"):
        NOTIFICATION_OUTCOMES.labels(status, kind).inc(sum(1 for d in docs if d["kind"] == kind))
    await status_events.announce(notify.db, session, docs, status, now)


async def release_due(notify: Notify, limit: int) -> int:
    """Scheduled and quiet-hours notifications whose time has come: back to `sending`, with a dispatch event."""
    now = datetime.now(UTC)
    due = await notify.db[NOTIFICATIONS].find({"status": "created", "due_at": {"$lte": now}}, {"priority": 1}).limit(limit).to_list()
    if not due:
        return 0

    async def work(session: AsyncClientSession) -> int:
        by_priority: dict[str, list[str]] = defaultdict(list)
        for doc in due:
            by_priority[doc["priority"]].append(doc["_id"])
        ids = [d["_id"] for d in due]
        for chunk in chunks(ids):
            await notify.db[NOTIFICATIONS].update_many({"_id": {"$in": chunk}, "status": "created"},
                                                       {"$set": {"status": "sending", "updated_at": now, "timeline.sending": now}}, session=session)
        await Outbox(notify.db).add_many(session, [dispatch_event(chunk, priority) for priority, chunk in by_priority.items()])
        return len(ids)

    return await notify.transaction(work)


async def redispatch_stale(notify: Notify, stale_after_s: float, limit: int) -> int:
    """Notifications `sending` for too long (their dispatch event was lost with a crashed attempt): dispatch again.

    Delivery only touches notifications still `sending` and never writes an inbox item twice, so a
    needless second event costs a look-up and nothing more.
    """
    now = datetime.now(UTC)
    stale = await notify.db[NOTIFICATIONS].find(
        {"status": "sending", "updated_at": {"$lt": now - timedelta(seconds=stale_after_s)}}, {"priority": 1}).limit(limit).to_list()
    if not stale:
        return 0

    async def work(session: AsyncClientSession) -> int:
        by_priority: dict[str, list[str]] = defaultdict(list)
        for doc in stale:
            by_priority[doc["priority"]].append(doc["_id"])
        for chunk in chunks([d["_id"] for d in stale]):
            await notify.db[NOTIFICATIONS].update_many({"_id": {"$in": chunk}, "status": "sending"}, {"$set": {"updated_at": now}}, session=session)
        await Outbox(notify.db).add_many(session, [dispatch_event(ids, priority) for priority, ids in by_priority.items()])
        return len(stale)

    redispatched = await notify.transaction(work)
    REDISPATCHED.inc(redispatched)
    return redispatched


async def reexpand_stale(notify: Notify, stale_after_s: float) -> int:
    """Jobs still `accepted` long after they were stored (their expansion was interrupted): expand again."""
    now = datetime.now(UTC)
    stale = await notify.db[JOBS].find({"status": "accepted", "updated_at": {"$lt": now - timedelta(seconds=stale_after_s)}}, {"_id": 1}).to_list()
    for job in stale:
        async def work(session: AsyncClientSession, job_id: str = job["_id"]) -> None:
            await notify.db[JOBS].update_one({"_id": job_id}, {"$set": {"updated_at": now}}, session=session)
            await Outbox(notify.db).add_many(session, [job_event(job_id)])

        await notify.transaction(work)
    return len(stale)

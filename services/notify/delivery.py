"""Delivering a chunk of notifications: render in the citizen's language, into the inbox, onto the push channel.

Runs inside the dispatcher's consumer transaction (one per dispatch event),
so a dispatcher killed half-way leaves nothing behind and the redelivered
event does the whole chunk again; the unique inbox index on
`notification_id` backs that up. Only notifications still `sending` are
touched, so a redelivery after a commit changes nothing.

A chunk is read in bulk (`_read`), each notification's fate is decided
without I/O (`_route`, `_render`), and the outcome is written in bulk
(`_write`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from libs.store import chunks

from . import platform_messages, progress, status_events, templates
from .channels import Push, push_batch
from .collections import ACCOUNTS, INBOX, NOTIFICATIONS, PREFERENCES, PUSH_BATCHES, TEMPLATES
from .context import Notify
from .metrics import CHANNEL_DELIVERIES, DISPATCH_LATENCY, NOTIFICATION_OUTCOMES
from .preferences import DEFAULT_CHANNELS, quiet_until
from .statuses import NOTIFICATION, NotificationStatus

SENDING = NotificationStatus.SENDING


def _inbox_id(notification_id: str) -> str:
    return "msg-" + notification_id.removeprefix("ntf-")


def _push_id(notification_id: str) -> str:
    return "psh-" + notification_id.removeprefix("ntf-")


def _template_key(doc: dict[str, Any]) -> str:
    return f"{doc['template_id']}:{doc['template_version']}"


async def by_id(collection: AsyncCollection, ids: list[str], session: AsyncClientSession | None) -> dict[str, dict[str, Any]]:
    """The documents with these `_id`s, read by `_id` alone (chunks of `$in`).

    The filter is `_id` and nothing else on purpose: the local database serves only such a filter from the `_id`
    index; with another field beside it (`status`, say) it walked a whole index or collection per query. Whatever
    else must hold is checked on the documents read.
    """
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(ids):
        async for doc in collection.find({"_id": {"$in": chunk}}, session=session):
            found[doc["_id"]] = doc
    return found


@dataclass(frozen=True)
class _Chunk:
    """A dispatch event's notifications still `sending`, and everything delivering them reads, fetched in bulk."""

    docs: list[dict[str, Any]]
    accounts: dict[str, dict[str, Any]]
    preferences: dict[str, dict[str, Any]]
    templates: dict[str, dict[str, Any]]
    # Notifications an interrupted earlier attempt already wrote to the inbox (a database without rollback keeps
    # them): not written twice (nor pushed twice: the push goes with the inbox item).
    in_inbox: set[str]


async def _read(notify: Notify, session: AsyncClientSession, ids: list[str]) -> _Chunk:
    db = notify.db
    # Read by _id in this transaction and checked here: a concurrent change to one of them makes the transaction's
    # write to it conflict (and the whole chunk is retried), so the updates below go by _id alone too.
    docs = [d for d in (await by_id(db[NOTIFICATIONS], ids, session)).values() if d["status"] == SENDING]
    account_ids = sorted({d["account_id"] for d in docs if d["account_id"]})
    # Inbox ids derive from the notification's, so that look-up goes by _id too.
    return _Chunk(
        docs=docs,
        accounts=await by_id(db[ACCOUNTS], account_ids, session),
        preferences=await by_id(db[PREFERENCES], account_ids, session),
        templates=await by_id(db[TEMPLATES], sorted({_template_key(d) for d in docs if d["template_id"]}), session),
        in_inbox={d["notification_id"] for d in (await by_id(db[INBOX], [_inbox_id(d["_id"]) for d in docs], session)).values()},
    )


@dataclass(frozen=True)
class _Held:
    """A notification that does not reach the inbox now: it takes `status` (with a `reason`, or waiting `until`)."""

    status: NotificationStatus
    reason: str | None = None
    until: datetime | None = None


def _route(doc: dict[str, Any], account: dict[str, Any] | None, pref: dict[str, Any], now: datetime) -> _Held | None:
    """Whether the recipient, their opt-outs or their quiet hours hold this notification back; None: deliver it."""
    if account is None or account.get("state") not in ("active", None):
        return _Held(NotificationStatus.FAILED, reason="recipient-inactive" if account else "recipient-unknown")
    if doc["kind"] == "agency" and doc["client_id"] in pref.get("opted_out", []):
        return _Held(NotificationStatus.SUPPRESSED)
    if doc["priority"] != "high" and (until := quiet_until(pref.get("quiet_hours"), now)):
        return _Held(NotificationStatus.CREATED, until=until)  # back to waiting, for the quiet hours' end
    return None


def _render(notify: Notify, chunk: _Chunk, doc: dict[str, Any], language: str) -> tuple[str, str, str]:
    """(subject, body, language used); RenderError when it cannot be rendered within the bounds."""
    if doc["kind"] == "platform":
        template = platform_messages.message(doc["platform_message"])
    else:
        template = chunk.templates.get(_template_key(doc))
    if template is None:
        raise templates.RenderError("render-error", "template gone")
    values = json.loads(notify.cipher.decrypt_record(doc["sealed"], record_id=doc["_id"])["personalisation"])
    return templates.render(template, language, values)


@dataclass
class _Outcome:
    """What delivering a chunk changes, gathered before anything is written."""

    changed: dict[NotificationStatus, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    deferred: list[tuple[dict[str, Any], datetime]] = field(default_factory=list)
    inbox_items: list[dict[str, Any]] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {str(status): len(docs) for status, docs in self.changed.items()} | {"deferred": len(self.deferred)}


async def deliver(notify: Notify, session: AsyncClientSession, ids: list[str]) -> dict[str, int]:
    now = notify.clock.now()
    chunk = await _read(notify, session, ids)
    if not chunk.docs:
        return {}
    outcome = _Outcome()
    for doc in chunk.docs:
        account = chunk.accounts.get(doc["account_id"] or "")
        pref = chunk.preferences.get(doc["account_id"] or "", {})
        held = _route(doc, account, pref, now)
        if held is not None and held.until is not None:
            outcome.deferred.append((doc, held.until))
            continue
        if held is not None:
            outcome.changed[held.status].append(doc | ({"reason": held.reason} if held.reason else {}))
            continue
        language = pref.get("language") or account.get("language") or "en"
        try:
            subject, body, language = _render(notify, chunk, doc, language)
        except templates.RenderError as exc:
            # render-limit-exceeded: the values made the message go over a rendering bound (never a huge inbox item).
            outcome.changed[NotificationStatus.FAILED].append(doc | {"reason": exc.reason})
            continue
        outcome.changed[NotificationStatus.DELIVERED].append(doc)
        if doc["_id"] in chunk.in_inbox:
            continue
        outcome.inbox_items.append(_inbox_item(notify, doc, subject, body, language, now))
        if "push" in pref.get("channels", DEFAULT_CHANNELS):
            outcome.pushes.append(Push(push_id=_push_id(doc["_id"]), account_id=doc["account_id"], title=subject, body=body,
                                       priority=doc["priority"], notification_id=doc["_id"]))
    await _write(notify, session, outcome, now)
    for doc in outcome.changed.get(NotificationStatus.DELIVERED, []):
        DISPATCH_LATENCY.observe(max(0.0, (now - doc["due_at"]).total_seconds()))
    CHANNEL_DELIVERIES.labels("inbox", "delivered").inc(len(outcome.inbox_items))
    return outcome.counts()


def _inbox_item(notify: Notify, doc: dict[str, Any], subject: str, body: str, language: str, now: datetime) -> dict[str, Any]:
    item_id = _inbox_id(doc["_id"])
    return {"_id": item_id, "notification_id": doc["_id"], "account_id": doc["account_id"], "kind": doc["kind"],
            "client_id": doc["client_id"], "client_name": doc["client_name"], "priority": doc["priority"], "language": language,
            "sealed": notify.cipher.encrypt_record({"subject": subject, "body": body}, record_id=item_id),
            "delivered_at": now, "read_at": None}


async def _write(notify: Notify, session: AsyncClientSession, outcome: _Outcome, now: datetime) -> None:
    """Per notification: its inbox item (insert) and its new status (update by _id); the chunk's pushes are one document."""
    db = notify.db
    # The push batch before the inbox items: the local database keeps a killed transaction's writes, and a redelivered
    # chunk skips (and does not push again) what is in the inbox already, so a notification in the inbox must have its
    # push queued. The same pushes make the same batch id: a redelivery that wrote it before finds it.
    if outcome.pushes:
        batch = push_batch(notify.cipher, outcome.pushes, now)
        if await db[PUSH_BATCHES].find_one({"_id": batch["_id"]}, {"_id": 1}, session=session) is None:
            await db[PUSH_BATCHES].insert_one(batch, session=session)
    if outcome.inbox_items:
        await db[INBOX].insert_many(outcome.inbox_items, session=session)
    for status, changed in outcome.changed.items():
        await set_status(notify, session, changed, status, now)
    if outcome.deferred:
        waiting = NotificationStatus.CREATED
        for doc, _ in outcome.deferred:
            NOTIFICATION.check(doc["status"], waiting, what="a notification")
        await db[NOTIFICATIONS].bulk_write([UpdateOne({"_id": d["_id"]}, {"$set": {
            "status": waiting, "due_at": until, "updated_at": now, "deferred": "quiet-hours"}}) for d, until in outcome.deferred],
            ordered=False, session=session)


async def set_status(notify: Notify, session: AsyncClientSession, docs: list[dict[str, Any]], status: NotificationStatus,
                     now: datetime) -> None:
    """Within the caller's transaction: `docs`, read in it and all in a status `status` may leave, take `status`.

    One update per notification, by `_id` alone, in one bulk write: the transaction read them, so a concurrent
    change to any of them conflicts rather than being overwritten.
    """
    if not docs:
        return
    for doc in docs:
        NOTIFICATION.check(doc["status"], status, what="a notification")
    update = {"status": status, "updated_at": now, f"timeline.{status}": now}
    await notify.db[NOTIFICATIONS].bulk_write(
        [UpdateOne({"_id": d["_id"]}, {"$set": update | ({"reason": d["reason"]} if d.get("reason") else {})}) for d in docs],
        ordered=False, session=session)
    await progress.count(notify.db, session, docs, status)
    for kind in ("agency", "platform"):
        NOTIFICATION_OUTCOMES.labels(status, kind).inc(sum(1 for d in docs if d["kind"] == kind))
    await status_events.announce(notify, session, docs, status, now)

"""Delivering a chunk of notifications: render in the citizen's language, into the inbox, onto the chosen channel.

The channel beside the inbox is the first of the agency's order that the
citizen turned on (preferences.choose_channel): a push is queued in the
chunk's push batch and the notification is `delivered`; an e-mail or SMS is
queued in `channel_messages` (messaging.py) and the notification is `sent`
until its provider's receipt (receipts.py).

Runs inside the dispatcher's consumer transaction (one per dispatch event),
so a dispatcher killed half-way leaves nothing behind and the redelivered
event does the whole chunk again; an inbox item's `_id` derives from its
notification's, so a second one for the same notification cannot be
inserted.

Two kinds of chunk. A single send's notification (or a scheduled one whose
time came) is stored `sending` before its dispatch event, and `deliver`
moves it on: only notifications still `sending` are touched, so a
redelivery after a commit changes nothing. A batch's notifications due now
are not stored before delivery: the event names the job and its
recipients' positions, and `deliver_job_chunk` writes each notification
once, in the status it ends in (delivered, suppressed, failed, or `created`
until quiet hours end) — one insert instead of an insert at expansion and an
update here, which the database's three status indexes made its most
expensive work. A position whose notification exists already (a redelivered
event) is passed over.

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

from libs.background import wake_up
from libs.store import chunks

from . import platform_messages, progress, status_events, templates
from .channels import Push, push_batch
from .collections import ACCOUNTS, CHANNEL_MESSAGES, CLIENTS, INBOX, JOBS, NOTIFICATIONS, PREFERENCES, PUSH_BATCHES, TEMPLATES, TIMED_WORK
from .context import Notify
from .metrics import CHANNEL_DELIVERIES, DISPATCH_LATENCY, NOTIFICATION_OUTCOMES
from .notifications import new_notification
from .messaging import OutboundMessage, message_id, queued_message
from .preferences import choose_channel, contacts, quiet_until
from .recipients import resolve
from .statuses import NOTIFICATION, NotificationStatus

SENDING = NotificationStatus.SENDING
# The channels whose provider's receipt decides the status, and the contact each needs.
MESSAGE_CHANNELS = {"email": "email", "sms": "phone"}


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
    # Read by _id in this transaction and checked here: a concurrent change to one of them makes the transaction's
    # write to it conflict (and the whole chunk is retried), so the updates below go by _id alone too.
    docs = [d for d in (await by_id(notify.db[NOTIFICATIONS], ids, session)).values() if d["status"] == SENDING]
    return await _read_for(notify, session, docs)


async def _read_for(notify: Notify, session: AsyncClientSession, docs: list[dict[str, Any]]) -> _Chunk:
    """Everything delivering `docs` needs besides the notifications themselves."""
    db = notify.db
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
    messages: list[OutboundMessage] = field(default_factory=list)  # e-mails and SMS (messaging.py)

    def counts(self) -> dict[str, int]:
        return {str(status): len(docs) for status, docs in self.changed.items()} | {"deferred": len(self.deferred)}


async def deliver(notify: Notify, session: AsyncClientSession, ids: list[str]) -> dict[str, int]:
    """Deliver stored notifications still `sending` (a single send's, or scheduled ones whose time came)."""
    now = notify.clock.now()
    chunk = await _read(notify, session, ids)
    if not chunk.docs:
        return {}
    outcome = _decide(notify, chunk, now)
    await _write(notify, session, outcome, now, stored=True)
    return _observed(outcome, now)


async def deliver_job_chunk(notify: Notify, session: AsyncClientSession, job_id: str, positions: list[int],
                            account_ids: list[str] | None = None) -> dict[str, int]:
    """Deliver a batch's recipients at these positions, each notification written once, in the status it ends in.

    `account_ids` (one per position): their accounts as the job's expansion resolved them; None: resolved here."""
    now = notify.clock.now()
    docs = await _job_notifications(notify, session, job_id, positions, account_ids, now)
    if not docs:
        return {}
    outcome = _decide(notify, await _read_for(notify, session, docs), now)
    await _write(notify, session, outcome, now, stored=False)
    return _observed(outcome, now)


def job_notification_id(job_id: str, position: int) -> str:
    """A batch's notification id: derived from its job and its recipient's position, so a retry finds it again."""
    return f"ntf-{job_id.removeprefix('job-')}-{position}"


def job_recipients(notify: Notify, job: dict[str, Any]) -> list[dict[str, Any]]:
    """A job's recipients, decrypted: the same job's chunks come one after the other, so the last job is kept."""
    cached = _last_job.get(job["_id"])
    if cached is None:
        cached = json.loads(notify.cipher.decrypt_record(job["sealed"], record_id=job["_id"])["recipients"])
        _last_job.clear()
        _last_job[job["_id"]] = cached
    return cached


_last_job: dict[str, list[dict[str, Any]]] = {}


async def _job_notifications(notify: Notify, session: AsyncClientSession, job_id: str, positions: list[int],
                             account_ids: list[str] | None, now: datetime) -> list[dict[str, Any]]:
    """The notifications of these positions not written yet, built in memory, `sending` (what `_decide` starts from)."""
    db = notify.db
    # A job's chunks come one after another: after the first, its recipients are known here and the job is read
    # without them (they are most of its document: ~800 KB for 10,000 recipients, read again per chunk before).
    known = _last_job.get(job_id)
    job = await db[JOBS].find_one({"_id": job_id}, None if known is None else {"sealed": 0}, session=session)
    if job is None:
        return []
    ids = {position: job_notification_id(job_id, position) for position in positions}
    written = set(await by_id(db[NOTIFICATIONS], list(ids.values()), session))
    todo = [p for p in positions if ids[p] not in written]
    if not todo:
        return []
    client = await db[CLIENTS].find_one({"_id": job["client_id"]}, session=session)
    recipients = known if known is not None else job_recipients(notify, job)
    if account_ids is not None and len(account_ids) == len(positions):
        account_of = dict(zip(positions, account_ids))  # resolved at expansion: one read of each subject per batch
    else:
        resolved = await resolve(db, client["sector"], sorted({recipients[p]["sub"] for p in todo}))
        account_of = {p: resolved.get(recipients[p]["sub"]) for p in todo}
    template = {"template_id": job["template_id"], "version": job["template_version"]}
    docs = []
    for position in todo:
        recipient = recipients[position]
        doc = new_notification(notify, client=client, template=template, kind="agency", account_id=account_of[position],
                               sub=recipient["sub"], personalisation=recipient["personalisation"],
                               reference=recipient.get("reference"), priority=job["priority"], due_at=now, now=now,
                               job_id=job_id, notification_id=ids[position])
        doc["created_at"] = doc["timeline"][NotificationStatus.CREATED] = job["created_at"]
        docs.append(doc)
    return docs


def _decide(notify: Notify, chunk: _Chunk, now: datetime) -> _Outcome:
    """Each notification's fate, without I/O."""
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
        channel = choose_channel(doc.get("channels"), pref, platform=doc["kind"] == "platform")
        # E-mail and SMS await their provider's receipt (`sent`); the inbox and push are delivered now.
        status = NotificationStatus.SENT if channel in MESSAGE_CHANNELS else NotificationStatus.DELIVERED
        outcome.changed[status].append(doc | {"channel": channel})
        if doc["_id"] in chunk.in_inbox:
            continue  # an interrupted attempt wrote the inbox item, and before it the push or message
        outcome.inbox_items.append(_inbox_item(notify, doc, subject, body, language, now))
        if channel == "push":
            outcome.pushes.append(Push(push_id=_push_id(doc["_id"]), account_id=doc["account_id"], title=subject, body=body,
                                       priority=doc["priority"], notification_id=doc["_id"]))
        elif channel in MESSAGE_CHANNELS:
            address = contacts(notify.cipher, doc["account_id"], pref)[MESSAGE_CHANNELS[channel]]
            outcome.messages.append(OutboundMessage(message_id=message_id(doc["_id"]), notification_id=doc["_id"], channel=channel,
                                                    address=address, subject=subject, body=body, language=language,
                                                    sender_name=doc["client_name"]))
    return outcome


def _observed(outcome: _Outcome, now: datetime) -> dict[str, int]:
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


async def _write(notify: Notify, session: AsyncClientSession, outcome: _Outcome, now: datetime, *, stored: bool) -> None:
    """Per notification: its inbox item (insert) and its status — an update by _id of a `stored` notification, else
    the notification itself, inserted in that status; the chunk's pushes are one document."""
    db = notify.db
    # The push batch before the inbox items: the local database keeps a killed transaction's writes, and a redelivered
    # chunk skips (and does not push again) what is in the inbox already, so a notification in the inbox must have its
    # push queued. The same pushes make the same batch id: a redelivery that wrote it before finds it.
    if outcome.pushes:
        batch = push_batch(notify.cipher, outcome.pushes, now)
        if await db[PUSH_BATCHES].find_one({"_id": batch["_id"]}, {"_id": 1}, session=session) is None:
            await db[PUSH_BATCHES].insert_one(batch, session=session)
            wake_up(TIMED_WORK)
    if outcome.messages:  # likewise: ids derive from the notifications', those an earlier attempt queued are kept
        queued = set(await by_id(db[CHANNEL_MESSAGES], [m.message_id for m in outcome.messages], session))
        fresh = [queued_message(notify.cipher, m, now) for m in outcome.messages if m.message_id not in queued]
        if fresh:
            await db[CHANNEL_MESSAGES].insert_many(fresh, ordered=False, session=session)
            wake_up(TIMED_WORK)
    if outcome.inbox_items:
        await db[INBOX].insert_many(outcome.inbox_items, session=session)
    waiting = NotificationStatus.CREATED
    for doc, _ in outcome.deferred:
        NOTIFICATION.check(doc["status"], waiting, what="a notification")
    deferral = [(doc, {"status": waiting, "due_at": until, "updated_at": now, "deferred": "quiet-hours"}) for doc, until in outcome.deferred]
    if not stored:
        first = [doc | change for doc, change in deferral]
        for status, changed in outcome.changed.items():
            first += [doc | _status_change(doc, status, now) for doc in _checked(changed, status)]
        if first:
            await db[NOTIFICATIONS].insert_many(first, ordered=False, session=session)
        for status, changed in outcome.changed.items():
            await _reported(notify, session, changed, status, now)
        return
    for status, changed in outcome.changed.items():
        await set_status(notify, session, changed, status, now)
    if deferral:
        await db[NOTIFICATIONS].bulk_write([UpdateOne({"_id": d["_id"]}, {"$set": change}) for d, change in deferral],
                                           ordered=False, session=session)


def _checked(docs: list[dict[str, Any]], status: NotificationStatus) -> list[dict[str, Any]]:
    for doc in docs:
        NOTIFICATION.check(doc["status"], status, what="a notification")
    return docs


def _status_change(doc: dict[str, Any], status: NotificationStatus, now: datetime) -> dict[str, Any]:
    """The fields a move to `status` sets (the timeline keeps each status's time)."""
    return {"status": status, "updated_at": now, "timeline": doc.get("timeline", {}) | {status: now}} | {
        name: doc[name] for name in ("reason", "channel") if doc.get(name)}


async def set_status(notify: Notify, session: AsyncClientSession, docs: list[dict[str, Any]], status: NotificationStatus,
                     now: datetime) -> None:
    """Within the caller's transaction: `docs`, read in it and all in a status `status` may leave, take `status`.

    One update per notification, by `_id` alone, in one bulk write: the transaction read them, so a concurrent
    change to any of them conflicts rather than being overwritten.
    """
    if not docs:
        return
    update = {"status": status, "updated_at": now, f"timeline.{status}": now}
    await notify.db[NOTIFICATIONS].bulk_write(
        [UpdateOne({"_id": d["_id"]}, {"$set": update | {name: d[name] for name in ("reason", "channel") if d.get(name)}})
         for d in _checked(docs, status)],
        ordered=False, session=session)
    await _reported(notify, session, docs, status, now)


async def _reported(notify: Notify, session: AsyncClientSession, docs: list[dict[str, Any]], status: NotificationStatus,
                    now: datetime) -> None:
    """What follows a move to `status`: the job's counters, the metrics, the agency's event and callbacks."""
    if not docs:
        return
    await progress.count(notify.db, session, docs, status)
    for kind in ("agency", "platform"):
        NOTIFICATION_OUTCOMES.labels(status, kind).inc(sum(1 for d in docs if d["kind"] == kind))
    await status_events.announce(notify, session, docs, status, now)
    await _audited(notify, session, docs, status)


# The moves the citizens' record of who messaged them keeps (`read` is audited by the inbox, notification.read).
AUDITED = (NotificationStatus.SENT, NotificationStatus.DELIVERED, NotificationStatus.FAILED, NotificationStatus.SUPPRESSED)


async def _audited(notify: Notify, session: AsyncClientSession, docs: list[dict[str, Any]], status: NotificationStatus) -> None:
    """`notification.send`: one audit record per agency and status change of a chunk, listing each notification with
    its citizen's account id (the data tracker selects by `notifications[].account_id`), the template and the
    channel — never the text. One per chunk, not per notification: a batch's notification stays two writes
    (tests/service/notify/test_writes_per_notification.py). Platform messages (approval prompts, security alerts)
    are the platform's own, following an action audited where it happened: not recorded again."""
    if status not in AUDITED:
        return
    by_sender: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        if doc.get("account_id") and doc["kind"] == "agency" and doc.get("client_id"):  # an unknown recipient is nobody's
            by_sender.setdefault(doc["client_id"], []).append(doc)
    for sender, sent in by_sender.items():
        await notify.audit(session, subject=sender, action="notification.send", actor=sender, outcome=str(status),
                           client_id=sender, notifications=[{
                               "account_id": d["account_id"], "notification_id": d["_id"],
                               "template_id": d.get("template_id"), "template_version": d.get("template_version"),
                               "channel": d.get("channel"), "job_id": d.get("job_id"),
                               # A failure's kind only: a provider's answer after the colon may quote the address.
                               **({"reason": d["reason"].split(":", 1)[0]} if d.get("reason") else {})} for d in sent])

"""Notifications and jobs: an agency sends a template to citizens it knows by their pairwise `sub`.

Status life cycle (GOV.UK Notify's, with the citizen's inbox at the end):

  created ──(its time comes)──► sending ──► delivered ──► read
     ▲  (scheduled, or waiting       │
     │   for quiet hours to end)     ├──► suppressed (the citizen opted out of this agency)
     └───────────────────────────────┘──► failed (recipient unknown or inactive, rendering failed)

A send is stored with its (encrypted) personalisation and, when due now, a
dispatch event in the same transaction; the dispatcher (dispatcher.py)
renders and delivers. An `Idempotency-Key` makes a retried request return
what the first one created instead of sending again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from libs.events import CloudEvent, Outbox
from libs.events.topics import NOTIFICATIONS, NOTIFICATIONS_PRIORITY
from libs.service.validation import DisplayParagraph

from . import progress, templates
from .callers import Agency
from .context import Notify
from .errors import Refused
from .metrics import NOTIFICATIONS_CREATED
from .recipients import agency_record, resolve
from .collections import CLIENTS, IDEMPOTENCY, JOBS
from .collections import NOTIFICATIONS as NOTIFICATIONS_COLLECTION

Priority = Literal["normal", "high"]
PENDING = ("created", "sending")
MAX_SCHEDULE = timedelta(days=7)
Personalisation = dict[str, str]


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template_id: str = Field(min_length=1, max_length=100)
    template_version: int | None = Field(default=None, ge=1, description="absent: the latest version, pinned at send")
    priority: Priority = "normal"
    send_at: datetime | None = Field(default=None, description="RFC 3339; deliver at this time (at most 7 days ahead)")


class PersonalisationField(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sub: str = Field(min_length=1, max_length=200, description="the citizen's pairwise subject at this agency")
    personalisation: dict[str, DisplayParagraph] = Field(default_factory=dict, max_length=50)  # rendered into the message
    reference: str | None = Field(default=None, max_length=200, description="the agency's own reference, echoed back")


class NotificationBody(_Common, PersonalisationField):
    pass


class BatchBody(_Common):
    recipients: list[PersonalisationField] = Field(min_length=1, max_length=10_000)


def _fingerprint(body: BaseModel) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _check_values(personalisation: dict[str, str]) -> None:
    for value in personalisation.values():
        if len(value) > 1000:
            raise Refused("personalisation-too-long", "a personalisation value is at most 1000 characters", 400)


def _due(body: _Common, now: datetime) -> datetime:
    if body.send_at is None:
        return now
    send_at = body.send_at if body.send_at.tzinfo else body.send_at.replace(tzinfo=UTC)
    if send_at - now > MAX_SCHEDULE:
        raise Refused("schedule-too-far", "send_at is at most 7 days ahead", 400)
    return max(send_at.astimezone(UTC), now)


def dispatch_topic(priority: str) -> str:
    return NOTIFICATIONS_PRIORITY.name if priority == "high" else NOTIFICATIONS.name


def dispatch_event(ids: list[str], priority: str) -> tuple[str, CloudEvent]:
    return dispatch_topic(priority), CloudEvent(source="/notify", type="notification.dispatch", subject=ids[0],
                                                data={"notification_ids": ids})


def new_notification(notify: Notify, *, client: dict[str, Any] | None, template: dict[str, Any] | None, kind: str,
                     account_id: str | None, sub: str | None, personalisation: dict[str, str], reference: str | None,
                     priority: str, due_at: datetime, now: datetime, job_id: str | None = None,
                     platform_message: str | None = None, notification_id: str | None = None) -> dict[str, Any]:
    notification_id = notification_id or f"ntf-{secrets.token_urlsafe(12)}"
    status = "sending" if due_at <= now else "created"
    return {
        "_id": notification_id, "kind": kind,
        "client_id": client["_id"] if client else None, "client_name": client["name"] if client else "Harbour ID",
        "sub": sub, "account_id": account_id,
        "template_id": template["template_id"] if template else None,
        "template_version": template["version"] if template else None,
        "platform_message": platform_message,
        "sealed": notify.cipher.encrypt_record({"personalisation": json.dumps(personalisation)}, record_id=notification_id),
        "reference": reference, "priority": priority, "job_id": job_id,
        "status": status, "due_at": due_at, "created_at": now, "updated_at": now,
        "timeline": {"created": now} | ({"sending": now} if status == "sending" else {}),
    }


async def _remembered(notify: Notify, session: AsyncClientSession, key_id: str, fingerprint: str) -> dict[str, Any] | None:
    seen = await notify.db[IDEMPOTENCY].find_one({"_id": key_id}, session=session)
    if seen is None:
        return None
    if seen["fingerprint"] != fingerprint:
        raise Refused("idempotency-key-reused", "this Idempotency-Key was used with a different request", 422)
    return seen


def _idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise Refused("bad-idempotency-key", "Idempotency-Key is 1 to 200 printable characters", 400)
    return key


async def _with_idempotency(notify: Notify, agency: Agency, key: str | None, fingerprint: str, work) -> tuple[dict[str, Any], bool]:
    """Run `work(session)` once per (agency, key); (answer, created). A retry gets the first answer, created=False."""
    key_id = f"{agency.client_id}:{key}" if key else None

    async def transaction(session: AsyncClientSession) -> tuple[dict[str, Any], bool]:
        if key_id is not None:
            seen = await _remembered(notify, session, key_id, fingerprint)
            if seen is not None:
                return seen["answer"], False
        answer = await work(session)
        if key_id is not None:
            await notify.db[IDEMPOTENCY].insert_one({"_id": key_id, "fingerprint": fingerprint, "answer": answer,
                                                     "created_at": datetime.now(UTC)}, session=session)
        return answer, True

    try:
        return await notify.transaction(transaction)
    except DuplicateKeyError:
        # The same key raced in another request and won: answer as a retry would.
        return await notify.transaction(transaction)


async def send(notify: Notify, agency: Agency, body: NotificationBody, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
    key = _idempotency_key(idempotency_key)
    client = await agency_record(notify.db, agency.client_id)
    template = await templates.get(notify.db, agency.client_id, body.template_id, body.template_version)
    missing = templates.missing_placeholders(template, body.personalisation)
    if missing:
        raise Refused("missing-placeholder", f"personalisation lacks: {', '.join(missing)}", 400, placeholders=missing)
    _check_values(body.personalisation)
    now = datetime.now(UTC)
    due_at = _due(body, now)
    account_id = (await resolve(notify.db, client["sector"], [body.sub])).get(body.sub)
    if account_id is None:
        # Only this agency's own sector is searched: the answer says nothing about other services' citizens.
        raise Refused("unknown-recipient", "no citizen with this sub has signed in to this service (or notify has not heard of it yet)", 422)

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        doc = new_notification(notify, client=client, template=template, kind="agency", account_id=account_id, sub=body.sub,
                               personalisation=body.personalisation, reference=body.reference, priority=body.priority,
                               due_at=due_at, now=now)
        await notify.db[NOTIFICATIONS_COLLECTION].insert_one(doc, session=session)
        if doc["status"] == "sending":
            await Outbox(notify.db).add_many(session, [dispatch_event([doc["_id"]], doc["priority"])])
        return {"notification_id": doc["_id"], "status": doc["status"], "template_id": template["template_id"],
                "template_version": template["version"], "reference": body.reference}

    # The fingerprint covers the request as sent, so "latest version" stays the same request across a new version.
    answer, created = await _with_idempotency(notify, agency, key, _fingerprint(body), work)
    if created:
        NOTIFICATIONS_CREATED.labels("single").inc()
    return answer, created


async def send_batch(notify: Notify, agency: Agency, body: BatchBody, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
    """Accept a job: validated here, stored with its recipients (encrypted), expanded by the dispatcher (expand_job).

    Like GOV.UK Notify's jobs, the request returns as soon as the job is safely stored; creating
    10,000 notifications happens in the pipeline, not inside an HTTP timeout.
    """
    key = _idempotency_key(idempotency_key)
    if len(body.recipients) > notify.settings.max_batch:
        raise Refused("batch-too-large", f"at most {notify.settings.max_batch} recipients per batch", 400)
    client = await agency_record(notify.db, agency.client_id)
    template = await templates.get(notify.db, agency.client_id, body.template_id, body.template_version)
    lacking = [(i, templates.missing_placeholders(template, r.personalisation)) for i, r in enumerate(body.recipients)]
    lacking = [(i, names) for i, names in lacking if names]
    if lacking:
        raise Refused("missing-placeholder", f"{len(lacking)} recipient(s) lack placeholders", 400,
                      placeholders=sorted({name for _, names in lacking for name in names}),
                      recipients=[{"index": i, "missing": names} for i, names in lacking[:100]])
    for recipient in body.recipients:
        _check_values(recipient.personalisation)
    now = datetime.now(UTC)
    due_at = _due(body, now)
    job_id = f"job-{secrets.token_urlsafe(12)}"
    recipients = json.dumps([r.model_dump() for r in body.recipients])

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        await notify.db[JOBS].insert_one({
            "_id": job_id, "client_id": client["_id"], "template_id": template["template_id"], "template_version": template["version"],
            "priority": body.priority, "due_at": due_at, "total": len(body.recipients), "status": "accepted", "created_at": now,
            "updated_at": now, "sealed": notify.cipher.encrypt_record({"recipients": recipients}, record_id=job_id)}, session=session)
        await Outbox(notify.db).add_many(session, [job_event(job_id)])
        return {"job_id": job_id, "total": len(body.recipients), "status": "accepted",
                "template_id": template["template_id"], "template_version": template["version"]}

    answer, created = await _with_idempotency(notify, agency, key, _fingerprint(body), work)
    if created:
        NOTIFICATIONS_CREATED.labels("batch").inc(answer["total"])
    return answer, created


def job_event(job_id: str) -> tuple[str, CloudEvent]:
    return NOTIFICATIONS.name, CloudEvent(source="/notify", type="notification.job", subject=job_id, data={"job_id": job_id})


async def expand_job(notify: Notify, session: AsyncClientSession, job_id: str) -> int:
    """The dispatcher's half of a batch: one notification per recipient (bulk), then dispatch events per chunk.

    Notification ids are derived from the job and the recipient's position, and only the missing ones
    are inserted, so an expansion interrupted half-way and run again creates nothing twice.
    """
    job = await notify.db[JOBS].find_one({"_id": job_id, "status": "accepted"}, session=session)
    if job is None:
        return 0
    client = await notify.db[CLIENTS].find_one({"_id": job["client_id"]}, session=session)
    template = {"template_id": job["template_id"], "version": job["template_version"]}
    recipients = json.loads(notify.cipher.decrypt_record(job["sealed"], record_id=job_id)["recipients"])
    accounts = await resolve(notify.db, client["sector"], list({r["sub"] for r in recipients}))
    existing = {d["_id"] async for d in notify.db[NOTIFICATIONS_COLLECTION].find({"job_id": job_id}, {"_id": 1}, session=session)}
    now = datetime.now(UTC)
    docs = []
    for index, recipient in enumerate(recipients):
        notification_id = f"ntf-{job_id.removeprefix('job-')}-{index}"
        if notification_id in existing:
            continue
        doc = new_notification(notify, client=client, template=template, kind="agency", account_id=accounts.get(recipient["sub"]),
                               sub=recipient["sub"], personalisation=recipient["personalisation"], reference=recipient.get("reference"),
                               priority=job["priority"], due_at=max(job["due_at"], now), now=now, job_id=job_id,
                               notification_id=notification_id)
        if doc["account_id"] is None:
            doc.update(status="failed", reason="unknown-recipient")
            doc["timeline"]["failed"] = now
        docs.append(doc)
    for start in range(0, len(docs), 1000):
        await notify.db[NOTIFICATIONS_COLLECTION].insert_many(docs[start:start + 1000], ordered=False, session=session)
    due = [d["_id"] for d in docs if d["status"] == "sending"]
    chunk = notify.settings.chunk_size
    await Outbox(notify.db).add_many(session, [dispatch_event(due[i:i + chunk], job["priority"]) for i in range(0, len(due), chunk)])
    # Counted afresh over every recipient (a re-run after an interrupted expansion counts the same); these
    # fail here, every other status is counted as it happens (progress.py).
    unknown = sum(1 for r in recipients if r["sub"] not in accounts)
    await notify.db[JOBS].update_one({"_id": job_id}, {"$set": {"status": "expanded", "updated_at": now, "unknown_recipients": unknown}},
                                     session=session)
    return len(docs)


def view(doc: dict[str, Any]) -> dict[str, Any]:
    out = {"notification_id": doc["_id"], "status": doc["status"], "sub": doc["sub"], "reference": doc.get("reference"),
           "template_id": doc["template_id"], "template_version": doc["template_version"], "priority": doc["priority"],
           "job_id": doc.get("job_id"), "created_at": doc["created_at"].isoformat(),
           "timeline": {k: v.isoformat() for k, v in doc.get("timeline", {}).items()}}
    if doc["status"] == "created":
        out["due_at"] = doc["due_at"].isoformat()
    if doc.get("reason"):
        out["reason"] = doc["reason"]
    return out


async def status(notify: Notify, agency: Agency, notification_id: str) -> dict[str, Any]:
    doc = await notify.db[NOTIFICATIONS_COLLECTION].find_one({"_id": notification_id, "client_id": agency.client_id})
    if doc is None:
        raise Refused("not-found", "no such notification for this agency", 404)
    return view(doc)


async def job_progress(notify: Notify, agency: Agency, job_id: str) -> dict[str, Any]:
    job = await notify.db[JOBS].find_one({"_id": job_id, "client_id": agency.client_id})
    if job is None:
        raise Refused("not-found", "no such job for this agency", 404)
    return {"job_id": job_id, "status": job["status"], "total": job["total"], "unknown_recipients": job.get("unknown_recipients"),
            "template_id": job["template_id"], "template_version": job["template_version"], "created_at": job["created_at"].isoformat(),
            **progress.view(job)}

"""Jobs: an agency sends a template to up to 10,000 citizens in one request (GOV.UK Notify's model).

The request stores the job with its recipients (encrypted) and a job event,
and returns; the dispatcher expands it into one notification per recipient
and dispatch events per chunk, so creating 10,000 notifications happens in
the pipeline, not inside an HTTP timeout. Its progress is counters on the
job document (progress.py).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import CloudEvent
from libs.events.topics import NOTIFICATIONS

from . import idempotency, progress, templates
from .callers import Agency
from .collections import CLIENTS, JOBS
from .collections import NOTIFICATIONS as NOTIFICATIONS_COLLECTION
from .context import Notify
from .delivery import by_id, job_notification_id, job_recipients
from .errors import BatchTooLarge, MissingPlaceholder, NotFound
from .metrics import NOTIFICATIONS_CREATED
from .notifications import PersonalisationField, SendOptions, check_values, dispatch_topic, due_time, new_notification
from .recipients import agency_record, resolve
from .statuses import JOB, JobStatus, NotificationStatus

# Notifications per insert_many while a job is expanded.
_INSERT_BATCH = 1000


class BatchBody(SendOptions):
    recipients: list[PersonalisationField] = Field(min_length=1, max_length=10_000)


class JobAccepted(BaseModel):
    job_id: str
    total: int
    status: Literal[JobStatus.ACCEPTED]
    template_id: str
    template_version: int


class JobProgress(BaseModel):
    job_id: str
    status: JobStatus
    total: int
    unknown_recipients: int | None = None
    template_id: str
    template_version: int
    created_at: str
    counts: dict[str, int]
    processed: int
    finished: bool


def _check_placeholders(template: dict[str, Any], body: BatchBody) -> None:
    lacking = [(i, templates.missing_placeholders(template, r.personalisation)) for i, r in enumerate(body.recipients)]
    lacking = [(i, names) for i, names in lacking if names]
    if lacking:
        raise MissingPlaceholder(f"{len(lacking)} recipient(s) lack placeholders",
                                 placeholders=sorted({name for _, names in lacking for name in names}),
                                 recipients=[{"index": i, "missing": names} for i, names in lacking[:100]])


async def send_batch(notify: Notify, agency: Agency, body: BatchBody, idempotency_key: str | None) -> tuple[JobAccepted, bool]:
    """Accept a job: validated here, stored with its recipients (encrypted), expanded by the dispatcher (expand_job).

    (what was accepted, created); a retry under the same Idempotency-Key gets the first answer (idempotency.py).
    """

    async def prepare() -> idempotency.Work[JobAccepted]:
        if len(body.recipients) > notify.settings.max_batch:
            raise BatchTooLarge(f"at most {notify.settings.max_batch} recipients per batch")
        client = await agency_record(notify.db, agency.client_id)
        template = await templates.get(notify.db, agency.client_id, body.template_id, body.template_version)
        _check_placeholders(template, body)
        for recipient in body.recipients:
            check_values(recipient.personalisation)
        now = notify.clock.now()
        due_at = due_time(body, now)
        job_id = f"job-{secrets.token_urlsafe(12)}"
        recipients = json.dumps([r.model_dump() for r in body.recipients])

        async def work(session: AsyncClientSession) -> JobAccepted:
            await notify.db[JOBS].insert_one({
                "_id": job_id, "client_id": client["_id"], "template_id": template["template_id"], "template_version": template["version"],
                "priority": body.priority, **({"channels": body.channels} if body.channels else {}), "due_at": due_at, "total": len(body.recipients), "status": JobStatus.ACCEPTED, "created_at": now,
                "updated_at": now, "sealed": notify.cipher.encrypt_record({"recipients": recipients}, record_id=job_id)}, session=session)
            await notify.publish_many(session, [job_event(notify, job_id)])
            return JobAccepted(job_id=job_id, total=len(body.recipients), status=JobStatus.ACCEPTED,
                               template_id=template["template_id"], template_version=template["version"])

        return work

    answer, created = await idempotency.once(notify, agency, idempotency_key, body, JobAccepted, prepare)
    if created:
        NOTIFICATIONS_CREATED.labels("batch").inc(answer.total)
    return answer, created


def job_event(notify: Notify, job_id: str) -> tuple[str, CloudEvent]:
    """The event that has the dispatcher expand a job."""
    return NOTIFICATIONS.name, notify.event("notification.job", job_id, {"job_id": job_id})


async def expand_job(notify: Notify, session: AsyncClientSession, job_id: str) -> int:
    """The dispatcher's half of a batch: dispatch events per chunk of recipients (and the notifications that fail now).

    A job due now stores no notification here: each dispatch event names the job and a chunk of its recipients'
    positions, and delivery writes every notification once, in the status it ends in (delivery.deliver_job_chunk).
    A scheduled job's notifications are stored `created` now and released when due (sweeps.release_due); recipients
    notify does not know fail now. Notification ids derive from the job and the position, and only missing ones are
    inserted, so an expansion interrupted half-way and run again creates nothing twice.
    """
    job = await notify.db[JOBS].find_one({"_id": job_id}, session=session)  # by _id alone; its status checked here
    if job is None or job["status"] != JOB.leaving(JobStatus.EXPANDED):
        return 0
    client = await notify.db[CLIENTS].find_one({"_id": job["client_id"]}, session=session)
    template = {"template_id": job["template_id"], "version": job["template_version"]}
    recipients = job_recipients(notify, job)
    accounts = await resolve(notify.db, client["sector"], list({r["sub"] for r in recipients}))
    now = notify.clock.now()
    due_now = job["due_at"] <= now
    docs = []
    for index, recipient in enumerate(recipients):
        account_id = accounts.get(recipient["sub"])
        if account_id is not None and due_now:
            continue  # written when delivered
        doc = new_notification(notify, client=client, template=template, kind="agency", account_id=account_id,
                               sub=recipient["sub"], personalisation=recipient["personalisation"], reference=recipient.get("reference"),
                               priority=job["priority"], due_at=max(job["due_at"], now), now=now, job_id=job_id,
                               notification_id=job_notification_id(job_id, index), channels=job.get("channels"))
        if account_id is None:
            doc.update(status=NotificationStatus.FAILED, reason="unknown-recipient")
            doc["timeline"][NotificationStatus.FAILED] = now
        docs.append(doc)
    existing = set(await by_id(notify.db[NOTIFICATIONS_COLLECTION], [d["_id"] for d in docs], session))
    docs = [d for d in docs if d["_id"] not in existing]
    for start in range(0, len(docs), _INSERT_BATCH):
        await notify.db[NOTIFICATIONS_COLLECTION].insert_many(docs[start:start + _INSERT_BATCH], ordered=False, session=session)
    size = notify.settings.chunk_size
    if due_now:
        positions = [i for i, r in enumerate(recipients) if r["sub"] in accounts]
        account_ids = [accounts[recipients[i]["sub"]] for i in positions]
        await notify.publish_many(session, [job_chunk_event(notify, job_id, positions[i:i + size], job["priority"],
                                                            account_ids[i:i + size])
                                            for i in range(0, len(positions), size)])
    # Counted afresh over every recipient (a re-run after an interrupted expansion counts the same); these
    # fail here, every other status is counted as it happens (progress.py).
    unknown = sum(1 for r in recipients if r["sub"] not in accounts)
    # `unwritten_since`: the chunks' notifications are not all written yet; the sweeper looks for lost ones after a while.
    await notify.db[JOBS].update_one({"_id": job_id}, {"$set": {"status": JobStatus.EXPANDED, "updated_at": now, "unknown_recipients": unknown}
                                                       | ({"unwritten_since": now} if due_now else {})}, session=session)
    return len(recipients)


def job_chunk_event(notify: Notify, job_id: str, positions: list[int], priority: str,
                    account_ids: list[str] | None = None) -> tuple[str, CloudEvent]:
    """The event that has the dispatcher deliver a chunk of a job's recipients, on the topic of their priority.

    `account_ids`: the recipients' accounts, one per position, as the expansion resolved them (a sub's account never
    changes), so the chunk does not read the subjects again; without them (the sweeper's redispatch) it does."""
    data: dict[str, Any] = {"job_id": job_id, "positions": positions}
    if account_ids is not None:
        data["account_ids"] = account_ids
    return dispatch_topic(priority), notify.event("notification.dispatch", job_notification_id(job_id, positions[0]), data)


async def job_progress(notify: Notify, agency: Agency, job_id: str) -> JobProgress:
    job = await notify.db[JOBS].find_one({"_id": job_id, "client_id": agency.client_id})
    if job is None:
        raise NotFound("no such job for this agency")
    return JobProgress(job_id=job_id, status=job["status"], total=job["total"], unknown_recipients=job.get("unknown_recipients"),
                       template_id=job["template_id"], template_version=job["template_version"],
                       created_at=job["created_at"].isoformat(), **progress.view(job))

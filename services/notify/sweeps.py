"""The dispatcher's timed sweeps: notifications whose time has come, and work a crashed attempt lost.

`release_due` moves scheduled and quiet-hours notifications back to
`sending` when their time comes. `redispatch_stale` and `reexpand_stale`
find what a killed dispatcher left behind (a chunk `sending` for too long,
a job still `accepted`, a job's recipients whose notification was never
written) and publish its event again; delivery and expansion are
idempotent, so a needless second event costs a look-up and nothing more.
Time is the context's clock: tests move it instead of sleeping.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from .collections import JOBS, NOTIFICATIONS
from .context import Notify
from .delivery import by_id, job_notification_id, job_recipients
from .metrics import REDISPATCHED
from .jobs import job_chunk_event, job_event
from .notifications import dispatch_event
from .statuses import JOB, NOTIFICATION, JobStatus, NotificationStatus

SENDING = NotificationStatus.SENDING


async def _dispatch(notify: Notify, session: AsyncClientSession, docs: list[dict[str, Any]], status: NotificationStatus,
                    change: dict[str, Any]) -> int:
    """Apply `change` to those of `docs` still in `status`, and publish one dispatch event per priority.

    Read again by `_id` in the transaction and written by `_id` alone (the local database serves no other filter
    from the `_id` index); a concurrent change to one of them makes the transaction conflict and start again.
    """
    current = [d for d in (await by_id(notify.db[NOTIFICATIONS], [d["_id"] for d in docs], session)).values() if d["status"] == status]
    if not current:
        return 0
    by_priority: dict[str, list[str]] = defaultdict(list)
    for doc in current:
        by_priority[doc["priority"]].append(doc["_id"])
    await notify.db[NOTIFICATIONS].bulk_write([UpdateOne({"_id": d["_id"]}, {"$set": change}) for d in current], ordered=False,
                                              session=session)
    await notify.publish_many(session, [dispatch_event(notify, ids, priority) for priority, ids in by_priority.items()])
    return len(current)


async def release_due(notify: Notify, limit: int) -> int:
    """Scheduled and quiet-hours notifications whose time has come: back to `sending`, with a dispatch event."""
    now = notify.clock.now()
    waiting = NOTIFICATION.leaving(SENDING)
    due = await notify.db[NOTIFICATIONS].find({"status": waiting, "due_at": {"$lte": now}}, {"priority": 1}).limit(limit).to_list()
    if not due:
        return 0
    change = {"status": SENDING, "updated_at": now, f"timeline.{SENDING}": now}
    return await notify.transaction(lambda session: _dispatch(notify, session, due, waiting, change))


async def redispatch_stale(notify: Notify, stale_after_s: float, limit: int) -> int:
    """Notifications `sending` for too long (their dispatch event was lost with a crashed attempt): dispatch again."""
    now = notify.clock.now()
    stale = await notify.db[NOTIFICATIONS].find(
        {"status": SENDING, "updated_at": {"$lt": now - timedelta(seconds=stale_after_s)}}, {"priority": 1}).limit(limit).to_list()
    if not stale:
        return 0
    redispatched = await notify.transaction(lambda session: _dispatch(notify, session, stale, SENDING, {"updated_at": now}))
    REDISPATCHED.inc(redispatched)
    return redispatched


async def reexpand_stale(notify: Notify, stale_after_s: float) -> int:
    """Jobs still `accepted` long after they were stored (their expansion was interrupted): expand again. Jobs
    expanded long ago with recipients whose notification was never written (a chunk's event lost with a crashed
    attempt): those chunks dispatched again."""
    now = notify.clock.now()
    before = now - timedelta(seconds=stale_after_s)
    accepted = JOB.leaving(JobStatus.EXPANDED)
    stale = await notify.db[JOBS].find({"status": accepted, "updated_at": {"$lt": before}}, {"_id": 1}).to_list()
    for job in stale:
        async def work(session: AsyncClientSession, job_id: str = job["_id"]) -> None:
            await notify.db[JOBS].update_one({"_id": job_id}, {"$set": {"updated_at": now}}, session=session)
            await notify.publish_many(session, [job_event(notify, job_id)])

        await notify.transaction(work)
    unwritten = await notify.db[JOBS].find({"unwritten_since": {"$lt": before}}, {"_id": 1}).to_list()
    for job in unwritten:
        await notify.transaction(lambda session, job_id=job["_id"]: _redispatch_unwritten(notify, session, job_id, now))
    return len(stale) + len(unwritten)


async def _redispatch_unwritten(notify: Notify, session: AsyncClientSession, job_id: str, now) -> None:
    """Dispatch again the chunks of a job's known recipients whose notification does not exist; none left: the job is done."""
    job = await notify.db[JOBS].find_one({"_id": job_id}, session=session)
    if job is None or "unwritten_since" not in job:
        return
    recipients = job_recipients(notify, job)
    ids = [job_notification_id(job_id, i) for i in range(len(recipients))]
    written = set(await by_id(notify.db[NOTIFICATIONS], ids, session))
    missing = [i for i, notification_id in enumerate(ids) if notification_id not in written]
    if not missing:
        await notify.db[JOBS].update_one({"_id": job_id}, {"$unset": {"unwritten_since": ""}}, session=session)
        return
    # Unknown recipients are written at expansion, so every missing one is a known recipient waiting for delivery.
    size = notify.settings.chunk_size
    await notify.publish_many(session, [job_chunk_event(notify, job_id, missing[i:i + size], job["priority"])
                                        for i in range(0, len(missing), size)])
    await notify.db[JOBS].update_one({"_id": job_id}, {"$set": {"unwritten_since": now}}, session=session)
    REDISPATCHED.inc(len(missing))

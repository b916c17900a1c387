"""A batch job's progress: counters on the job document, moved in the transaction that changes a status.

Counting a job's notifications by status on every progress poll meant
reading all 10,000 of them each time; on the local database that took more
time than delivering them. So every status change of a job's notification
(delivery, suppression, failure, read) increments its job's counter in the
same transaction, and a progress poll reads one document. A notification
leaving `delivered` for `read` moves from one counter to the other;
recipients unknown at expansion are the job's `unknown_recipients`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from .collections import JOBS
from .statuses import REPORTED, NotificationStatus

COUNTED = REPORTED


async def count(db: AsyncDatabase, session: AsyncClientSession, docs: list[dict[str, Any]], status: NotificationStatus) -> None:
    """Within the caller's transaction: `docs` (as they were before) have just taken `status`."""
    if status not in COUNTED:
        return
    # A counted status a notification leaves (delivered, for read) loses what this one gains; the status each left is
    # the document's own (read may follow delivered or, before an e-mail's receipt, sent).
    changes: dict[str, Counter[str]] = {}
    for doc in docs:
        if not doc.get("job_id"):
            continue
        change = changes.setdefault(doc["job_id"], Counter())
        change[f"counts.{status}"] += 1
        if doc.get("status") in COUNTED and doc["status"] != status:
            change[f"counts.{doc['status']}"] -= 1
    for job_id, change in changes.items():
        await db[JOBS].update_one({"_id": job_id}, {"$inc": dict(change)}, session=session)


def view(job: dict[str, Any]) -> dict[str, Any]:
    counts = {status: 0 for status in COUNTED} | job.get("counts", {})
    # Recipients unknown to notify fail when the job is expanded, before any delivery.
    counts[NotificationStatus.FAILED] += job.get("unknown_recipients") or 0
    processed = sum(counts.values())
    return {"counts": counts | {"pending": job["total"] - processed}, "processed": processed, "finished": processed == job["total"]}

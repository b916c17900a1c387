"""The citizens' prompt queue: one document per approval request, whoever asked for it."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.approvals import ApprovalRequest

from .store import APPROVALS


async def enqueue(db: AsyncDatabase, session: AsyncClientSession | None, request: ApprovalRequest) -> None:
    """Add the prompt to its citizen's queue; the same approval id again changes nothing."""
    await db[APPROVALS].update_one(
        {"_id": request.approval_id},
        {
            "$setOnInsert": {
                "account_id": request.account_id,
                "request": request.model_dump(mode="json"),
                "digest": request.digest(),
                "status": "pending",
                "expires_at": request.expires_at,
                "received_at": datetime.now(UTC),
            }
        },
        upsert=True,
        session=session,
    )

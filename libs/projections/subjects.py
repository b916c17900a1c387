"""Who a relying party's pairwise `sub` is: (sub, sector) → account, from `identity.subject_assigned`.

auth publishes the event in the transaction that first uses a pairwise
subject, so a relying party never holds a `sub` the services cannot learn.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.store import index

SUBJECTS = "subjects"
SUBJECT_ASSIGNED = "identity.subject_assigned"
SUBJECT_INDEXES = (index(SUBJECTS, "sector", "account_id"),)


async def record_subject(db: AsyncDatabase, session: AsyncClientSession, data: dict[str, Any]) -> None:
    await db[SUBJECTS].update_one({"_id": data["sub"]}, {"$set": {"sector": data["sector"], "account_id": data["account_id"]}},
                                  upsert=True, session=session)


async def account_of_subject(db: AsyncDatabase, sub: str, sector: str, *, session: AsyncClientSession | None = None) -> str | None:
    """The account a relying party's `sub` names in its sector; None while the event has not arrived."""
    doc = await db[SUBJECTS].find_one({"_id": sub, "sector": sector}, session=session)
    return doc["account_id"] if doc else None


async def pairwise_subject(db: AsyncDatabase, sector: str, account_id: str, *, session: AsyncClientSession | None = None) -> str | None:
    """The citizen's `sub` at a sector: the only identifier its relying parties get."""
    doc = await db[SUBJECTS].find_one({"sector": sector, "account_id": account_id}, session=session)
    return doc["_id"] if doc else None

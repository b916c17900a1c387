"""Who a pairwise `sub` is: the projections of identity.subject_assigned and clients.events.

An agency knows a citizen only by the pairwise subject of its own sector, so
the lookup is always (sub, the agency's sector): a sub from another sector
resolves to nobody, exactly like a made-up one — an agency learns nothing
about citizens of other services.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from libs.store import chunks

from .errors import UnknownClient
from .collections import CLIENTS, SUBJECTS


async def agency_record(db: AsyncDatabase, client_id: str) -> dict[str, Any]:
    client = await db[CLIENTS].find_one({"_id": client_id})
    if client is None:
        raise UnknownClient("this client is not known to notify yet; retry shortly")
    return client


async def resolve(db: AsyncDatabase, sector: str, subs: list[str]) -> dict[str, str]:
    """sub -> account id, for the subs of this sector that notify knows."""
    found: dict[str, str] = {}
    for chunk in chunks(subs):
        # By `_id` alone, the sector checked here: the local database serves only a filter that is `_id` and nothing
        # else from the `_id` index (with the sector too it walked the sector's index, every subject of it per chunk).
        async for doc in db[SUBJECTS].find({"_id": {"$in": chunk}}, {"account_id": 1, "sector": 1}):
            if doc.get("sector") == sector:
                found[doc["_id"]] = doc["account_id"]
    return found


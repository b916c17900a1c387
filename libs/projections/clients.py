"""The relying parties a service serves: name, kind and sector of every client, from `client.registered` / `client.updated`.

Also whether a client subscribed to its own topic `agency.<client_id>.events`
(`agency_events`, docs/events.md): formfill, notify and signing write a copy
of its outcomes there only if it did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

CLIENTS = "clients"
CLIENT_CHANGED = frozenset({"client.registered", "client.updated"})
# auth's events before the member existed carry no `agency_events`: every client then got its agency topic, and
# keeps it (auth treats such a stored registration the same way, services/auth/clients/registry.py).
AGENCY_EVENTS_BEFORE_THE_SETTING = True


async def record_client(
    db: AsyncDatabase, session: AsyncClientSession, data: dict[str, Any], *, also: Mapping[str, Any] | None = None
) -> None:
    """Upsert the client's name, kind, sector and agency topic setting; `also`: further fields this service keeps,
    each with its default."""
    fields = {"name": data["client_name"], "kind": data["kind"], "sector": data["sector"],
              "agency_events": data.get("agency_events", AGENCY_EVENTS_BEFORE_THE_SETTING) is True}
    fields |= {name: data.get(name, default) for name, default in (also or {}).items()}
    await db[CLIENTS].update_one({"_id": data["client_id"]}, {"$set": fields}, upsert=True, session=session)


def wants_agency_events(client: Mapping[str, Any] | None) -> bool:
    """Whether this projected client gets copies on its own topic (a row recorded before the setting: yes)."""
    return client is not None and client.get("agency_events", AGENCY_EVENTS_BEFORE_THE_SETTING) is True


async def agency_subscribers(db: AsyncDatabase, client_ids: Iterable[str], *, session: AsyncClientSession | None = None) -> set[str]:
    """Which of these clients get copies on their own topic: one read by `_id` (or `_id` `$in`) in the caller's
    transaction, the projection as this service knows it when the outcome is written."""
    ids = sorted(set(client_ids))
    if not ids:
        return set()
    query = {"_id": ids[0]} if len(ids) == 1 else {"_id": {"$in": ids}}
    return {doc["_id"] async for doc in db[CLIENTS].find(query, {"agency_events": 1}, session=session) if wants_agency_events(doc)}

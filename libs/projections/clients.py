"""The relying parties a service serves: name, kind and sector of every client, from `client.registered` / `client.updated`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

CLIENTS = "clients"
CLIENT_CHANGED = frozenset({"client.registered", "client.updated"})


async def record_client(
    db: AsyncDatabase, session: AsyncClientSession, data: dict[str, Any], *, also: Mapping[str, Any] | None = None
) -> None:
    """Upsert the client's name, kind and sector; `also`: further fields this service keeps, each with its default."""
    fields = {"name": data["client_name"], "kind": data["kind"], "sector": data["sector"]}
    fields |= {name: data.get(name, default) for name, default in (also or {}).items()}
    await db[CLIENTS].update_one({"_id": data["client_id"]}, {"$set": fields}, upsert=True, session=session)

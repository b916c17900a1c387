"""The citizen's devices: listing them, and revoking one (its tokens are refused everywhere within seconds)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.revocation import events as revocation_events

from ..collections import DEVICES
from ..errors import NoSuchDevice
from .tokens import DeviceContext

if TYPE_CHECKING:
    from ..context import Auth


def device_view(doc: dict) -> dict[str, Any]:
    view = {
        "device_id": doc["_id"],
        "name": doc["name"],
        "status": doc["status"],
        "key_thumbprint": doc["jkt"],
        "created_at": doc["created_at"].isoformat(),
    }
    if doc.get("revoked_at"):
        view["revoked_at"] = doc["revoked_at"].isoformat()
    return view


async def list_devices(db: AsyncDatabase, account_id: str) -> list[dict[str, Any]]:
    docs = await db[DEVICES].find({"account_id": account_id}).sort("created_at", 1).to_list()
    return [device_view(d) for d in docs]


async def revoke_device(auth: "Auth", session: AsyncClientSession, actor: DeviceContext, device_id: str) -> None:
    """Revoke one of the citizen's devices; its device tokens are refused everywhere once the event arrives (≤ 2 s)."""
    result = await auth.db[DEVICES].update_one(
        {"_id": device_id, "account_id": actor.account_id, "status": "active"},
        {"$set": {"status": "revoked", "revoked_at": auth.clock.now(), "revoked_by": actor.device_id}},
        session=session,
    )
    if result.matched_count != 1:
        raise NoSuchDevice("no such active device on this account")
    await auth.audit(session, subject=actor.account_id, action="device.revoke", actor=actor.device_id, device_id=device_id)
    # Tokens issued up to now live at most device_token_ttl_s; a minute more covers clock skew between services.
    # (Wall-clock time, like the tokens' own `exp` it is compared with.)
    await revocation_events.device_revoked(auth.outbox, session, device_id,
                                           expires_at=time.time() + auth.settings.device_token_ttl_s + 60)

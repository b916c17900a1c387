"""The citizen's devices: storing a new one, listing, naming and revoking them (a revoked one's tokens are refused
everywhere within seconds)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.revocation import events as revocation_events
from libs.tokens import thumbprint

from ..collections import DEVICES, SESSIONS
from ..oidc import backchannel
from ..errors import NoSuchDevice, PasskeyAlreadyRegistered
from .protection import registered
from .tokens import DeviceContext

if TYPE_CHECKING:
    from libs.backbone import ServiceContext

    from ..context import Auth


def device_view(doc: dict) -> dict[str, Any]:
    view = {
        "device_id": doc["_id"],
        "name": doc["name"],
        "status": doc["status"],
        "key_thumbprint": doc["jkt"],
        "created_at": doc["created_at"].isoformat(),
    }
    view["key_storage"], view["user_verification"] = registered(doc)
    if doc.get("revoked_at"):
        view["revoked_at"] = doc["revoked_at"].isoformat()
    return view


async def new_device(auth: "Auth", session: AsyncClientSession, account: dict[str, Any], *, device_id: str, name: str,
                     jwk: dict[str, str], now: datetime, **extra: Any) -> None:
    """Inside a transaction: store a bound device of `account` (activation's first device, or one added by pairing).
    A passkey another device got meanwhile (the unique index; devices/passkeys.refuse_registered checked before):
    PasskeyAlreadyRegistered, nothing stored."""
    try:
        await auth.db[DEVICES].insert_one(
            {
                "_id": device_id,
                "account_id": account["_id"],
                "name": name,
                "public_jwk": jwk,
                "jkt": thumbprint(jwk),
                "status": "active",
                "created_at": now,
                # What a device token check needs of the account, kept in step by change_state (devices/tokens.py).
                "account_state": account["state"],
                "account_assurance": account.get("assurance"),
                **extra,
            },
            session=session,
        )
    except DuplicateKeyError as exc:
        if "passkey" in str((exc.details or {}).get("keyPattern", "")):
            raise PasskeyAlreadyRegistered("this passkey is already registered: make a new one") from None
        raise


async def list_devices(db: AsyncDatabase, account_id: str) -> list[dict[str, Any]]:
    docs = await db[DEVICES].find({"account_id": account_id}).sort("created_at", 1).to_list()
    return [device_view(d) for d in docs]


async def rename_device(auth: "Auth", session: AsyncClientSession, actor: DeviceContext, device_id: str, name: str) -> dict[str, Any]:
    """Name one of the account's devices (this one or another, revoked ones too: the list keeps them)."""
    renamed = await auth.db[DEVICES].find_one_and_update(
        {"_id": device_id, "account_id": actor.account_id}, {"$set": {"name": name}},
        return_document=ReturnDocument.AFTER, session=session)
    if renamed is None:
        raise NoSuchDevice("no such device on this account")
    await auth.audit(session, subject=actor.account_id, action="device.rename", actor=actor.device_id, device_id=device_id)
    return device_view(renamed)


async def revoke_device(auth: "Auth", session: AsyncClientSession, actor: DeviceContext, device_id: str) -> None:
    """Revoke one of the citizen's devices; its device tokens are refused everywhere once the event arrives (≤ 2 s)."""
    result = await auth.db[DEVICES].update_one(
        {"_id": device_id, "account_id": actor.account_id, "status": "active"},
        {"$set": {"status": "revoked", "revoked_at": auth.clock.now(), "revoked_by": actor.device_id}},
        session=session,
    )
    if result.matched_count != 1:
        raise NoSuchDevice("no such active device on this account")
    # Sessions at the issuer do not record which phone approved them: any may have been this one's, so all of the
    # account's end, and every relying party with one (or a grant) is told by back-channel logout.
    logouts = await backchannel.queue_logouts(auth, session, actor.account_id, reason="device revoked")
    ended = (await auth.db[SESSIONS].delete_many({"account_id": actor.account_id}, session=session)).deleted_count
    await auth.audit(session, subject=actor.account_id, action="device.revoke", actor=actor.device_id, device_id=device_id,
                     sessions_ended=ended, backchannel_logouts=logouts)
    await revocation_events.device_revoked(auth.outbox, session, device_id, expires_at=_revocation_expiry(auth))


async def revoke_all_devices(ctx: "ServiceContext", session: AsyncClientSession, account_id: str, *, actor: str,
                             reason: str) -> list[str]:
    """Revoke every active device of the account (a lost phone replaced, the account closed), each with its
    revocation event, inside the caller's transaction; return their ids."""
    devices = [doc["_id"] for doc in await ctx.db[DEVICES].find(
        {"account_id": account_id, "status": "active"}, {"_id": 1}, session=session).to_list()]
    if devices:
        await ctx.db[DEVICES].update_many(
            {"_id": {"$in": devices}, "status": "active"},
            {"$set": {"status": "revoked", "revoked_at": ctx.clock.now(), "revoked_by": actor, "revoked_reason": reason}},
            session=session)
    for device_id in devices:
        await revocation_events.device_revoked(ctx.outbox, session, device_id, expires_at=_revocation_expiry(ctx))
    return devices


def _revocation_expiry(ctx: "ServiceContext") -> float:
    # Tokens issued up to now live at most device_token_ttl_s; a minute more covers clock skew between services.
    # (Wall-clock time, like the tokens' own `exp` it is compared with.)
    return time.time() + ctx.settings.device_token_ttl_s + 60

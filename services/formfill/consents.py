"""The citizen's consent receipts: every release, and standing consents they can revoke."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import CloudEvent, Outbox, agency_topic
from libs.events.audit import record_audit

from .callers import Device
from .context import Formfill
from .formfill_requests import Refused, opened_purpose
from .collections import CONSENTS


def _view(formfill: Formfill, doc: dict[str, Any]) -> dict[str, Any]:
    view = {k: doc[k] for k in ("client_id", "client_name", "request_id", "fields", "standing", "status")}
    view |= {"receipt_id": doc["_id"], "granted_at": doc["granted_at"].isoformat(),
             "purpose": opened_purpose(formfill, doc, record_id=f"consent.{doc['_id']}")}
    if doc.get("revoked_at"):
        view["revoked_at"] = doc["revoked_at"].isoformat()
    return view


async def list_consents(formfill: Formfill, device: Device) -> list[dict[str, Any]]:
    docs = await formfill.db[CONSENTS].find({"account_id": device.account_id}).sort("granted_at", -1).limit(500).to_list()
    return [_view(formfill, d) for d in docs]


async def revoke(formfill: Formfill, device: Device, receipt_id: str) -> None:
    async def work(session: AsyncClientSession) -> None:
        doc = await formfill.db[CONSENTS].find_one({"_id": receipt_id, "account_id": device.account_id}, session=session)
        if doc is None:
            raise Refused("not-found", "no such consent", 404)
        if not doc["standing"]:
            raise Refused("not-standing", "a one-time release cannot be revoked; it is kept as your receipt", 409)
        if doc["status"] == "revoked":
            return
        await formfill.db[CONSENTS].update_one({"_id": receipt_id}, {"$set": {"status": "revoked", "revoked_at": datetime.now(UTC)}}, session=session)
        outbox = Outbox(formfill.db)
        await outbox.add(session, agency_topic(doc["client_id"]), CloudEvent(
            source="/formfill", type="consent.revoked", subject=receipt_id, data={"receipt_id": receipt_id, "request_id": doc["request_id"]}))
        await record_audit(outbox, session, service="formfill", subject=device.account_id, action="consent.revoke",
                           actor=device.device_id, receipt_id=receipt_id)

    await formfill.transaction(work)

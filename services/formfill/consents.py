"""The citizen's consent receipts: every release, and standing consents they can revoke."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import agency_topic
from libs.projections import agency_subscribers

from .callers import Device
from .collections import CONSENTS
from .context import Formfill
from .errors import ConsentNotFound, NotStanding


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipt_id: str
    client_id: str
    client_name: str
    request_id: str
    fields: list[str]
    purpose: str
    standing: bool
    status: Literal["active", "revoked"]
    granted_at: str
    revoked_at: str | None = None


class ConsentList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consents: list[Consent]


# The relying party's purpose is about the citizen's business: personal data, so a receipt stores it only
# encrypted, under its own data key (issue 14, item 15).
def _record_id(receipt_id: str) -> str:
    return f"consent.{receipt_id}"


def _purpose(formfill: Formfill, doc: dict[str, Any]) -> str:
    """The receipt's purpose (a receipt stored before encryption keeps it in the clear)."""
    if "text" not in doc:
        return doc["purpose"]
    return formfill.cipher.decrypt_record(doc["text"], record_id=_record_id(doc["_id"]))["purpose"]


async def record_receipt(formfill: Formfill, session: AsyncClientSession, receipt_id: str, request: dict[str, Any],
                         released: list[str]) -> None:
    """The receipt of a release: which fields went to whom, and why (names only, never values)."""
    await formfill.db[CONSENTS].insert_one(
        {"_id": receipt_id, "account_id": request["account_id"], "client_id": request["client_id"],
         "client_name": request["client_name"], "request_id": request["_id"], "fields": released,
         "text": formfill.cipher.encrypt_record({"purpose": request["purpose"]}, record_id=_record_id(receipt_id)),
         "standing": request["standing"], "status": "active", "granted_at": formfill.clock.now()}, session=session)


def _view(formfill: Formfill, doc: dict[str, Any]) -> Consent:
    view = {k: doc[k] for k in ("client_id", "client_name", "request_id", "fields", "standing", "status")}
    view |= {"receipt_id": doc["_id"], "granted_at": doc["granted_at"].isoformat(), "purpose": _purpose(formfill, doc)}
    if doc.get("revoked_at"):
        view["revoked_at"] = doc["revoked_at"].isoformat()
    return Consent(**view)


async def list_consents(formfill: Formfill, device: Device) -> ConsentList:
    docs = await formfill.db[CONSENTS].find({"account_id": device.account_id}).sort("granted_at", -1).limit(500).to_list()
    return ConsentList(consents=[_view(formfill, d) for d in docs])


async def revoke(formfill: Formfill, device: Device, receipt_id: str) -> None:
    async def work(session: AsyncClientSession) -> None:
        doc = await formfill.db[CONSENTS].find_one({"_id": receipt_id, "account_id": device.account_id}, session=session)
        if doc is None:
            raise ConsentNotFound("no such consent")
        if not doc["standing"]:
            raise NotStanding("a one-time release cannot be revoked; it is kept as your receipt")
        if doc["status"] == "revoked":
            return
        await formfill.db[CONSENTS].update_one({"_id": receipt_id}, {"$set": {"status": "revoked", "revoked_at": formfill.clock.now()}},
                                               session=session)
        if await agency_subscribers(formfill.db, [doc["client_id"]], session=session):  # only if it subscribed
            await formfill.publish(session, agency_topic(doc["client_id"]), "consent.revoked", receipt_id,
                                   {"receipt_id": receipt_id, "request_id": doc["request_id"]})
        await formfill.audit(session, subject=device.account_id, action="consent.revoke", actor=device.device_id, receipt_id=receipt_id,
                             client_id=doc["client_id"], request_id=doc["request_id"], fields=doc["fields"])

    await formfill.transaction(work)

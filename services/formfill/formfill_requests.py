"""Form-fill requests: a relying party names fields, the citizen approves on the phone, the data is released once.

Life cycle: pending (waiting for the citizen; anonymous requests first wait
for the app to open their link) → approved (release waiting to be read) |
denied | expired. The release is a JWS signed by formfill (JWKS at
/v1/formfill/jwks), encrypted to the client's key when it registered one,
stored encrypted until it is read once or expires, and leaves a consent
record the citizen can list.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.approvals import ApprovalRequest, DecisionRejected, Requester, seal_prompt, verify_decision
from libs.crypto import seal_jwt
from libs.events import CloudEvent, Outbox, agency_topic
from libs.events.audit import record_audit
from libs.events.topics import APPROVAL_REQUESTED
from libs.service.validation import DisplayText
from libs.tokens import load_public_jwk

from .callers import Device, RelyingParty
from .context import Formfill
from .collections import CLIENTS, CONSENTS, REQUESTS, RESULTS, SUBJECTS, VAULT
from .vault import FIELDS, read_fields

APP_LINK_PREFIX = "harbourid://formfill?request="
DECISIONS = Counter(
    "harbour_formfill_decisions_total",
    "Citizens' answers to form-fill requests: released or denied.",
    ["outcome"],
)


# The relying party's free text (the purpose) is about the citizen's business: personal data, so requests and
# consent receipts store it only encrypted, each under its own data key (issue 14, item 15).
def seal_purpose(formfill: Formfill, purpose: str, *, record_id: str) -> dict[str, Any]:
    return formfill.cipher.encrypt_record({"purpose": purpose}, record_id=record_id)


def opened_purpose(formfill: Formfill, doc: dict[str, Any], *, record_id: str) -> str:
    """The stored purpose (a record stored before encryption keeps it in the clear)."""
    if "text" not in doc:
        return doc["purpose"]
    return formfill.cipher.decrypt_record(doc["text"], record_id=record_id)["purpose"]


def _with_purpose(formfill: Formfill, doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "purpose": opened_purpose(formfill, doc, record_id=f"request.{doc['_id']}")}


class Refused(Exception):
    def __init__(self, reason: str, message: str, status: int, **extra: Any) -> None:
        super().__init__(message)
        self.reason, self.status, self.extra = reason, status, extra


class FieldWanted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="one of " + ", ".join(FIELDS))
    required: bool = True

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FIELDS:
            raise ValueError(f"unknown field; known fields: {', '.join(FIELDS)}")
        return value


class FormfillRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    fields: list[FieldWanted] = Field(min_length=1, max_length=len(FIELDS))
    purpose: DisplayText = Field(min_length=3, max_length=300)  # shown on the phone
    standing: bool = Field(default=False, description="a standing consent the citizen can later revoke")

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[FieldWanted]) -> list[FieldWanted]:
        if len({f.name for f in value}) != len(value):
            raise ValueError("each field at most once")
        return value


def _approval(doc: dict[str, Any]) -> ApprovalRequest:
    return ApprovalRequest(
        approval_id=f"formfill-{doc['_id']}",
        account_id=doc["account_id"],
        action="formfill",
        requester=Requester(service="formfill", client_id=doc["client_id"], client_name=doc["client_name"]),
        purpose=doc["purpose"],
        details={"required": [f["name"] for f in doc["fields"] if f["required"]],
                 "optional": [f["name"] for f in doc["fields"] if not f["required"]], "standing": doc["standing"]},
        expires_at=doc["expires_at"],
    )


async def _ask_citizen(formfill: Formfill, session: AsyncClientSession, doc: dict[str, Any]) -> None:
    approval = _approval(doc)
    await Outbox(formfill.db).add(session, APPROVAL_REQUESTED.name, CloudEvent(
        source="/formfill", type="approval.requested", subject=approval.approval_id,
        data=seal_prompt(approval, formfill.settings.auth_sealing_jwk)))  # the purpose and field names: for auth's eyes only


async def create(formfill: Formfill, caller: RelyingParty, body: FormfillRequestBody) -> dict[str, Any]:
    client = await formfill.db[CLIENTS].find_one({"_id": caller.client_id})
    if client is None:
        raise Refused("unknown-client", "this client is not known to formfill yet; retry shortly", 409, headers={"Retry-After": "1"})
    not_registered = sorted({f.name for f in body.fields} - set(client.get("formfill_fields", [])))
    if not_registered:
        raise Refused("field-not-registered", f"the client is not registered for: {', '.join(not_registered)}", 403, fields=not_registered)
    account_id = None
    if caller.sub is not None:
        subject = await formfill.db[SUBJECTS].find_one({"_id": caller.sub, "sector": client["sector"]})
        profile = await formfill.db[VAULT].find_one({"_id": subject["account_id"]}, {"state": 1}) if subject else None
        if profile is None:
            raise Refused("citizen-unknown", "this citizen is not known to formfill yet; retry shortly", 409, headers={"Retry-After": "1"})
        account_id = subject["account_id"]
    now = datetime.now(UTC).replace(microsecond=0)
    request_id = secrets.token_urlsafe(16)
    stored = {
        "_id": request_id, "client_id": caller.client_id, "client_name": client["name"],
        "account_id": account_id, "fields": [f.model_dump() for f in body.fields],
        "text": seal_purpose(formfill, body.purpose, record_id=f"request.{request_id}"),
        "standing": body.standing, "status": "pending", "created_at": now,
        "expires_at": now + timedelta(seconds=formfill.settings.request_ttl_s),
    }
    doc = {**stored, "purpose": body.purpose}  # the prompt shows it; only its encrypted form is stored

    async def work(session: AsyncClientSession) -> None:
        await formfill.db[REQUESTS].insert_one(stored, session=session)
        if account_id is not None:
            await _ask_citizen(formfill, session, doc)

    await formfill.transaction(work)
    answer = {"request_id": doc["_id"], "status": "pending", "expires_at": doc["expires_at"].isoformat()}
    if account_id is None:
        answer["app_link"] = APP_LINK_PREFIX + doc["_id"]
    return answer


async def claim(formfill: Formfill, device: Device, request_id: str) -> dict[str, Any]:
    """The app opened an anonymous request's link: it becomes this citizen's request and a prompt is sent."""
    now = datetime.now(UTC)

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        doc = await formfill.db[REQUESTS].find_one_and_update(
            {"_id": request_id, "status": "pending", "expires_at": {"$gt": now}, "account_id": None},
            {"$set": {"account_id": device.account_id}}, return_document=True, session=session)
        if doc is None:
            raise Refused("link-unusable", "this request has expired or was opened by someone else", 409)
        await _ask_citizen(formfill, session, _with_purpose(formfill, doc))
        return doc

    doc = await formfill.transaction(work)
    return {"request_id": request_id, "approval_id": f"formfill-{request_id}", "client_name": doc["client_name"]}


async def on_decided(formfill: Formfill, session: AsyncClientSession, data: dict[str, Any]) -> None:
    """approval.decided for one of our prompts: check the device's signature ourselves, then release or close."""
    request_id = data["approval_id"].removeprefix("formfill-")
    doc = await formfill.db[REQUESTS].find_one({"_id": request_id}, session=session)
    if doc is None or doc["status"] != "pending" or doc["account_id"] != data["account_id"]:
        return
    doc = _with_purpose(formfill, doc)
    approval = _approval(doc)
    try:
        claims = verify_decision(data["decision_jws"], load_public_jwk(data["device_jwk"]), approval_id=approval.approval_id, digest=approval.digest())
    except DecisionRejected:
        return  # not a decision over what we asked: ignore it
    if claims.decision != "approve":
        DECISIONS.labels("denied").inc()
        await formfill.db[REQUESTS].update_one({"_id": request_id}, {"$set": {"status": "denied", "decided_at": datetime.now(UTC)}}, session=session)
        return
    DECISIONS.labels("released").inc()
    required = [f["name"] for f in doc["fields"] if f["required"]]
    optional = [f["name"] for f in doc["fields"] if not f["required"]]
    kept = optional if claims.selection is None else [name for name in optional if name in claims.selection]
    released = required + kept
    values = await read_fields(formfill.db, formfill.cipher, doc["account_id"], released)
    client = await formfill.db[CLIENTS].find_one({"_id": doc["client_id"]}, session=session)
    subject = await formfill.db[SUBJECTS].find_one({"sector": client["sector"], "account_id": doc["account_id"]}, session=session)
    receipt_id = f"rcpt-{secrets.token_urlsafe(12)}"
    now = int(time.time())
    claims_out = {"aud": doc["client_id"], "iat": now, "exp": now + formfill.settings.result_ttl_s, "jti": receipt_id,
                  "request_id": request_id, "purpose": doc["purpose"], "fields": values}
    if subject is not None:
        claims_out["sub"] = subject["_id"]
    token = await formfill.signer.sign(claims_out)
    media_type = "application/jwt"
    if client.get("encryption_jwk"):
        token = seal_jwt(token, client["encryption_jwk"])
        media_type = "application/jose"
    expires_at = datetime.now(UTC) + timedelta(seconds=formfill.settings.result_ttl_s)
    await formfill.db[RESULTS].insert_one(
        {"_id": request_id, "sealed": formfill.cipher.encrypt_record({"token": token}, record_id=request_id),
         "media_type": media_type, "expires_at": expires_at}, session=session)
    await formfill.db[CONSENTS].insert_one(
        {"_id": receipt_id, "account_id": doc["account_id"], "client_id": doc["client_id"], "client_name": doc["client_name"],
         "request_id": request_id, "fields": released, "text": seal_purpose(formfill, doc["purpose"], record_id=f"consent.{receipt_id}"),
         "standing": doc["standing"], "status": "active", "granted_at": datetime.now(UTC)}, session=session)
    await formfill.db[REQUESTS].update_one({"_id": request_id}, {"$set": {
        "status": "approved", "decided_at": datetime.now(UTC), "released_fields": released, "receipt_id": receipt_id}}, session=session)
    outbox = Outbox(formfill.db)
    await outbox.add(session, agency_topic(doc["client_id"]), CloudEvent(
        source="/formfill", type="consent.granted", subject=receipt_id,
        # No purpose: the relying party wrote it and has it by request id; free text stays off the outbox and Kafka.
        data={"receipt_id": receipt_id, "request_id": request_id, "sub": claims_out.get("sub"), "fields": released,
              "standing": doc["standing"]}))
    await record_audit(outbox, session, service="formfill", subject=doc["account_id"], action="formfill.release",
                       actor=data["device_id"], client_id=doc["client_id"], receipt_id=receipt_id)


async def _own_request(formfill: Formfill, caller: RelyingParty, request_id: str) -> dict[str, Any]:
    doc = await formfill.db[REQUESTS].find_one({"_id": request_id, "client_id": caller.client_id})
    if doc is None:
        raise Refused("not-found", "no such request for this client", 404)
    return doc


def _status(doc: dict[str, Any]) -> str:
    if doc["status"] == "pending" and datetime.now(UTC) >= doc["expires_at"]:
        return "expired"
    return doc["status"]


async def status(formfill: Formfill, caller: RelyingParty, request_id: str) -> dict[str, Any]:
    doc = _with_purpose(formfill, await _own_request(formfill, caller, request_id))
    view = {"request_id": doc["_id"], "status": _status(doc), "purpose": doc["purpose"],
            "fields": doc["fields"], "expires_at": doc["expires_at"].isoformat()}
    if doc["status"] == "approved":
        view["released_fields"] = doc["released_fields"]
        view["receipt_id"] = doc["receipt_id"]
    if doc["status"] == "denied":
        view["error"] = "access_denied"
    return view


async def take_result(formfill: Formfill, caller: RelyingParty, request_id: str) -> tuple[str, str]:
    """The release, once: (token, media type). Read again or never read in time: gone (410)."""
    doc = await _own_request(formfill, caller, request_id)
    state = _status(doc)
    if state == "denied":
        raise Refused("access_denied", "the citizen declined this request", 403)
    if state in ("pending",):
        raise Refused("not-ready", "the citizen has not answered yet", 409, headers={"Retry-After": "1"})
    if state == "expired":
        raise Refused("gone", "the request expired without an answer", 410)
    result = await formfill.db[RESULTS].find_one_and_delete({"_id": request_id, "expires_at": {"$gt": datetime.now(UTC)}})
    if result is None:
        raise Refused("gone", "the result was already read or has expired", 410)
    await formfill.db[REQUESTS].update_one({"_id": request_id}, {"$set": {"result_read_at": datetime.now(UTC)}})
    return formfill.cipher.decrypt_record(result["sealed"], record_id=request_id)["token"], result["media_type"]

"""Each citizen's queue of approval prompts, and their device-signed decisions.

Prompts arrive as `approval.requested` from the service that needs consent.
A decision is accepted once, from an active device of the prompt's account,
signed by that device's key over the prompt's digest, before the prompt
expires; it leaves as `approval.decided` carrying the signature and the
device key so the requesting service can check it for itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.approvals import ApprovalRequest, DecisionRejected, decision_device_id, verify_decision
from libs.events import CloudEvent, Outbox
from libs.events.audit import record_audit
from libs.events.topics import APPROVAL_DECIDED
from libs.tokens import load_public_jwk

from . import prompts
from .devices import DeviceContext
from .oidc import login
from .errors import Refused
from .store import ACCOUNTS, APPROVALS

if TYPE_CHECKING:
    from .context import Auth


class UnknownAccount(ValueError):
    """A prompt for an account auth does not know: the event cannot be applied."""


async def store_prompt(db: AsyncDatabase, session: AsyncClientSession, event: CloudEvent) -> None:
    """Handler of `approval.requested`: put the prompt in the citizen's queue (idempotent per approval id)."""
    request = ApprovalRequest.model_validate(event.data)
    if await db[ACCOUNTS].find_one({"_id": request.account_id}, {"_id": 1}, session=session) is None:
        raise UnknownAccount("approval requested for an unknown account")
    await prompts.enqueue(db, session, request)


def prompt_view(doc: dict, now: datetime) -> dict[str, Any]:
    status = doc["status"]
    if status == "pending" and now >= doc["expires_at"]:
        status = "expired"
    request = doc["request"]
    view = {
        "approval_id": doc["_id"],
        "status": status,
        "action": request["action"],
        "requester": request["requester"],
        "purpose": request["purpose"],
        "details": request["details"],
        "matching_code": request.get("matching_code"),
        "expires_at": doc["expires_at"].isoformat(),
        "digest": doc["digest"],
        # The app recomputes the digest from this, so it signs what it showed.
        "request": request,
    }
    if doc.get("decided_at"):
        view["decided_at"] = doc["decided_at"].isoformat()
    return view


async def pending_prompts(db: AsyncDatabase, account_id: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    docs = await (
        db[APPROVALS]
        .find({"account_id": account_id, "status": "pending", "expires_at": {"$gt": now}})
        .sort("expires_at", 1)
        .limit(100)
        .to_list()
    )
    return [prompt_view(d, now) for d in docs]


async def get_prompt(db: AsyncDatabase, account_id: str, approval_id: str) -> dict[str, Any]:
    doc = await db[APPROVALS].find_one({"_id": approval_id, "account_id": account_id})
    if doc is None:
        raise Refused("not-found", "no such approval for this account", 404)
    return prompt_view(doc, datetime.now(UTC))


async def decide(
    auth: "Auth", session: AsyncClientSession, device: DeviceContext, approval_id: str, decision_jws: str
) -> dict[str, Any]:
    """Verify and record the decision inside the caller's transaction; publish approval.decided.

    Prompts auth asked for itself (logins, CIBA) are finished here too, in the same transaction.
    """
    db = auth.db
    doc = await db[APPROVALS].find_one({"_id": approval_id, "account_id": device.account_id}, session=session)
    if doc is None:
        raise Refused("not-found", "no such approval for this account", 404)
    if doc["status"] == "expired":
        raise Refused("expired", "this approval has expired", 410)
    if doc["status"] != "pending":
        raise Refused("already-decided", f"this approval was already {doc['status']}", 409)
    now = datetime.now(UTC)
    if now >= doc["expires_at"]:
        raise Refused("expired", "this approval has expired", 410)
    try:
        if decision_device_id(decision_jws) != device.device_id:
            raise DecisionRejected("wrong-device", "the decision must be signed by this device's key")
        claims = verify_decision(
            decision_jws, load_public_jwk(device.public_jwk), approval_id=approval_id, digest=doc["digest"]
        )
    except DecisionRejected as exc:
        raise Refused(exc.reason, str(exc), 400 if exc.reason == "malformed" else 403) from None
    status = "approved" if claims.decision == "approve" else "denied"
    result = await db[APPROVALS].update_one(
        {"_id": approval_id, "status": "pending"},
        {"$set": {"status": status, "decided_at": now, "device_id": device.device_id, "decision_jws": decision_jws}},
        session=session,
    )
    if result.modified_count != 1:
        raise Refused("already-decided", "this approval was already decided", 409)
    request = doc["request"]
    outbox = Outbox(db)
    await outbox.add(
        session,
        APPROVAL_DECIDED.name,
        CloudEvent(
            source="/auth",
            type="approval.decided",
            subject=approval_id,
            data={
                "approval_id": approval_id,
                "account_id": device.account_id,
                "requester": request["requester"],
                "action": request["action"],
                "decision": claims.decision,
                "selection": claims.selection,
                "digest": doc["digest"],
                "device_id": device.device_id,
                "device_jwk": device.public_jwk,
                "decision_jws": decision_jws,
                "decided_at": now.isoformat(),
            },
        ),
    )
    await record_audit(
        outbox, session, service="auth", subject=device.account_id, action="approval.decide",
        actor=device.device_id, outcome=status, approval_id=approval_id,
    )
    result = {"approval_id": approval_id, "status": status, "decided_at": now.isoformat()}
    if request["requester"]["service"] == "auth":
        result |= await login.on_decision(auth, session, {**doc, "device_id": device.device_id}, claims.decision)
    return result

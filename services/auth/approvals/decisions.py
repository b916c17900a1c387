"""Each citizen's queue of approval prompts, and their device-signed decisions.

Prompts arrive as `approval.requested` from the service that needs consent.
A decision is accepted once, from an active device of the prompt's account,
signed by that device's key over the prompt's digest, before the prompt
expires; it leaves as `approval.decided` carrying the signature and the
device key so the requesting service can check it for itself.

The prompt's free text (purpose, details) arrives sealed to auth and is kept
encrypted (queue.py); it is opened only for the citizen's device and to
recompute the digest a decision must be signed over.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.approvals import DecisionRejected, decision_device_id, verify_decision
from libs.events import CloudEvent, Outbox
from libs.events.audit import record_audit
from libs.events.topics import APPROVAL_DECIDED
from libs.tokens import load_public_jwk

from ..collections import APPROVALS
from ..devices.tokens import DeviceContext
from ..errors import Refused
from ..oidc import login
from .queue import request_of

if TYPE_CHECKING:
    from ..context import Auth


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
    # The digest is recomputed from the decrypted request: what the phone was shown is what it must have signed.
    digest = request_of(doc, auth.field_cipher).digest()
    try:
        if decision_device_id(decision_jws) != device.device_id:
            raise DecisionRejected("wrong-device", "the decision must be signed by this device's key")
        claims = verify_decision(
            decision_jws, load_public_jwk(device.public_jwk), approval_id=approval_id, digest=digest
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
                "digest": digest,
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

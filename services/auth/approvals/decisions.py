"""The citizen's device-signed decisions on the prompts of their approval queue.

A decision is accepted once, from an active device of the prompt's account,
signed by that device's key over the prompt's digest, before the prompt
expires; it leaves as `approval.decided` carrying the signature and the
device key so the requesting service can check it for itself.

The prompt's free text (purpose, details) arrives sealed to auth and is kept
encrypted (queue.py); it is opened only for the citizen's device and to
recompute the digest a decision must be signed over.

Prompts auth asked for itself (logins, CIBA requests, closing the account,
adding a device: requester `auth`) are then finished, in the same
transaction, by the finisher registered for their action (`Auth.finishers`,
filled at start-up by app.py from the oidc package): this module never
imports the ones it finishes for. Those publish no `approval.decided`: no
other service asked (docs/events.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.approvals import DecisionClaims, DecisionRejected, Requester, decision_device_id, verify_decision
from libs.events.topics import APPROVAL_DECIDED
from libs.service.tracing import continuing
from libs.tokens import load_public_jwk

from ..collections import APPROVALS
from ..devices.passkeys import PasskeyAssertion, user_verified
from ..devices.protection import PASSKEY, authentication_methods
from ..devices.tokens import DeviceContext
from ..errors import (
    DECISION_REFUSALS,
    AlreadyDecided,
    ApprovalExpired,
    NoSuchApproval,
    UserVerificationRequired,
    WrongDevice,
)
from .queue import QUEUED, request_of

# The requester of the prompts auth asks for itself (oidc/login.py, identity/closure.py, devices/pairing.py).
AUTH_REQUESTER = "auth"
# The platform asking on its own behalf (closing the account, adding a device), not a relying party's login.
PLATFORM_REQUESTER = Requester(service=AUTH_REQUESTER, client_id="harbour-id", client_name="Harbour ID")


def asked_by_auth(request: dict[str, Any]) -> bool:
    """A prompt auth asked for itself and finishes itself: no other service waits for its decision or expiry."""
    return request["requester"]["service"] == AUTH_REQUESTER


if TYPE_CHECKING:
    from ..context import Auth

async def decide(
    auth: "Auth", session: AsyncClientSession, device: DeviceContext, approval_id: str, decision_jws: str, *,
    passkey: PasskeyAssertion | None = None,
) -> dict[str, Any]:
    """Verify and record the decision inside the caller's transaction; publish approval.decided.

    Prompts auth asked for itself (logins, CIBA) are finished here too, in the same transaction. The phone's
    request is a trace of its own: the decision's work (and the events it publishes) continues the trace of the
    login or request the prompt belongs to, linked to the phone's request.
    """
    now = auth.clock.now()
    doc = await _pending(auth, session, device, approval_id, now)
    with continuing(doc.get("traceparent"), "approval decided",
                    {"harbour.approval_id": approval_id, "harbour.approval.action": doc["request"]["action"]}):
        # Every event of the decision (approval.decided, the audit records, a login's outcome) in one insert.
        async with auth.batched(session):
            return await _decided(auth, session, device, doc, decision_jws, passkey, now)


async def _decided(
    auth: "Auth", session: AsyncClientSession, device: DeviceContext, doc: dict[str, Any], decision_jws: str,
    passkey: PasskeyAssertion | None, now: datetime
) -> dict[str, Any]:
    approval_id = doc["_id"]
    # The digest is recomputed from the decrypted request: what the phone was shown is what it must have signed.
    digest = request_of(doc, auth.field_cipher).digest()
    claims = _verified(decision_jws, device, approval_id, digest)
    status = "approved" if claims.decision == "approve" else "denied"
    # A passkey device's approval: the citizen verified by its passkey over this digest (a denial needs none). The
    # requesting services read the decision's `uv` (signing keeps it as evidence): "passkey" only from such a device.
    if claims.decision == "approve" and claims.uv == PASSKEY and device.user_verification != PASSKEY:
        raise UserVerificationRequired("this device has no passkey: its decision cannot claim one (uv)")
    sign_count = (await _user_verified(auth, session, device, passkey, digest)
                  if claims.decision == "approve" and device.user_verification == PASSKEY else None)
    # How the citizen authenticated for this decision (RFC 8176): the key's kind, and the PIN if the device
    # registered one and says it asked for it, or the passkey auth verified (devices/protection.py).
    amr = authentication_methods(device.key_storage, device.user_verification, claims.uv,
                                 passkey_verified=sign_count is not None)
    factors = _factors(device, claims.uv, sign_count)
    await _record(auth, session, device, approval_id, decision_jws, status, now, factors)
    await _publish(auth, session, doc, device, claims, decision_jws, digest, status, now, amr, factors)
    result = {"approval_id": approval_id, "status": status, "decided_at": now.isoformat()}
    request = doc["request"]
    finisher = auth.finishers.get(request["action"]) if asked_by_auth(request) else None
    if finisher is not None:
        result |= await finisher(auth, session, {**doc, "device_id": device.device_id, "device_assurance": device.assurance,
                                                 "amr": amr}, claims.decision)
    return result


async def _user_verified(auth: "Auth", session: AsyncClientSession, device: DeviceContext,
                         passkey: PasskeyAssertion | None, digest: str) -> int:
    """Verify the passkey assertion over `digest` against the device's credential; its new sign count is stored in
    the decision's transaction (devices/passkeys.user_verified)."""
    return await user_verified(auth, device.device_id, passkey, digest, session=session)


def _factors(device: DeviceContext, claimed_uv: str | None, sign_count: int | None) -> dict[str, Any]:
    """What the decision proved, kept with it: the device key always; the passkey's verification (auth's check) or
    the app's PIN claim as the device registered it."""
    if sign_count is not None:
        return {"device_key": True, "user_verification": PASSKEY, "uv_flag": True, "passkey_sign_count": sign_count}
    claimed = claimed_uv if device.user_verification == "pin" and claimed_uv == "pin" else "none"
    return {"device_key": True, "user_verification": claimed}


async def _pending(auth: "Auth", session: AsyncClientSession, device: DeviceContext, approval_id: str, now: datetime) -> dict[str, Any]:
    """The device's account's prompt, still open for a decision: as this process queued it (queue.QUEUED: unchanged
    until decided; `_record`'s conditional update refuses it if it moved meanwhile), else as stored."""
    doc = QUEUED.recall(auth.db.name, approval_id)
    if doc is None or doc["account_id"] != device.account_id:
        doc = await auth.db[APPROVALS].find_one({"_id": approval_id, "account_id": device.account_id}, session=session)
    return _still_open(doc, now)


def _still_open(doc: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    if doc is None:
        raise NoSuchApproval("no such approval for this account")
    if doc["status"] == "expired":
        raise ApprovalExpired("this approval has expired")
    if doc["status"] != "pending":
        raise AlreadyDecided(f"this approval was already {doc['status']}")
    if now >= doc["expires_at"]:
        raise ApprovalExpired("this approval has expired")
    return doc


def _verified(decision_jws: str, device: DeviceContext, approval_id: str, digest: str) -> DecisionClaims:
    """The decision's claims, signed by this device's key over this approval's digest."""
    try:
        if decision_device_id(decision_jws) != device.device_id:
            raise WrongDevice("the decision must be signed by this device's key")
        return verify_decision(decision_jws, load_public_jwk(device.public_jwk), approval_id=approval_id, digest=digest)
    except DecisionRejected as exc:
        raise DECISION_REFUSALS[exc.reason](str(exc)) from None


async def _record(
    auth: "Auth", session: AsyncClientSession, device: DeviceContext, approval_id: str, decision_jws: str, status: str,
    now: datetime, factors: dict[str, Any],
) -> None:
    """Mark the prompt decided, once, with the factors it proved: a concurrent decision loses, and so does one made on
    a remembered prompt that has moved since (decided, expired or withdrawn: the stored one says which)."""
    result = await auth.db[APPROVALS].update_one(
        {"_id": approval_id, "status": "pending"},
        {"$set": {"status": status, "decided_at": now, "device_id": device.device_id, "decision_jws": decision_jws,
                  "factors": factors}},
        session=session,
    )
    if result.modified_count != 1:
        _still_open(await auth.db[APPROVALS].find_one({"_id": approval_id, "account_id": device.account_id}, session=session), now)
        raise AlreadyDecided("this approval was already decided")
    auth.after_commit(("decided-prompt", approval_id), lambda: QUEUED.forget(auth.db.name, approval_id))


async def _publish(
    auth: "Auth",
    session: AsyncClientSession,
    doc: dict[str, Any],
    device: DeviceContext,
    claims: DecisionClaims,
    decision_jws: str,
    digest: str,
    status: str,
    now: datetime,
    amr: list[str],
    factors: dict[str, Any],
) -> None:
    """`approval.decided` with what the requesting service needs to check the decision itself, and the audit record.

    Auth's own prompts (a login, CIBA, closing the account, adding a device) are finished in this transaction by
    their finisher: no other service asked, so none is told — formfill and signing read every `approval.decided` and
    would only drop each citizen's every login, after reading its account id and device key."""
    request = doc["request"]
    if not asked_by_auth(request):
        await _publish_decided(auth, session, doc, device, claims, decision_jws, digest, now)
    await auth.audit(session, subject=device.account_id, action="approval.decide", actor=device.device_id,
                     outcome=status, approval_id=doc["_id"], kind=request["action"], client_id=request["requester"].get("client_id"),
                     amr=amr, uv=factors["user_verification"])


async def _publish_decided(auth: "Auth", session: AsyncClientSession, doc: dict[str, Any], device: DeviceContext,
                           claims: DecisionClaims, decision_jws: str, digest: str, now: datetime) -> None:
    request = doc["request"]
    await auth.publish(session, APPROVAL_DECIDED, "approval.decided", doc["_id"], {
        "approval_id": doc["_id"],
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
    })

"""Adding a device from an existing one: the new phone shows a code, the old phone enters it and approves.

1. The new phone makes its key pair and asks for a pairing (`start`): the
   same proof of possession over a single-use nonce as activation, so the
   pairing is bound to that key from the start. It gets a pairing id (its
   private handle, 192 random bits) and a short code to show: 8 symbols of
   the activation alphabet (31^8 ≈ 2^39.6), stored only as a keyed hash,
   alive `pairing_ttl_s` (5 minutes).
2. The citizen types the code on a phone already bound (`claim`, with its
   device token: only an active device of an active account gets here). The
   code is single use: the first account that enters it claims the pairing,
   and a `add_device` prompt naming the new device and its key thumbprint is
   queued on that account's own queue (alive `pairing_approval_ttl_s`),
   with a 4-digit matching code the new phone then shows too: the citizen
   checks both screens agree before approving (a code claimed by someone
   else shows on the new phone with no prompt on the citizen's own).
   An unknown, expired or used code is one answer (`invalid-pairing-code`),
   and each account may enter `pairing_max_wrong_codes` wrong codes per
   `pairing_wrong_code_window_s` (the try is counted atomically before the
   code is looked up, so a burst of concurrent guesses gets no more), then
   `429 too-many-pairing-codes`: guessing someone's live code is hopeless.
3. A device of that account approves the prompt like every prompt,
   device-signed over its digest (approvals/decisions.py); the finisher here
   (`on_decision`, in the decision's transaction) binds the new device to
   the claiming account with the key the pairing was started with:
   `identity.device_added` (notify's inbox alert) and the audit record
   `device.pair`. A denial kills the pairing. A device of another account
   cannot see or decide the prompt; whatever happens, the device binds only
   to the account whose device approved, never to one that merely saw the code.
4. The new phone asks after its pairing (`view`) until it is `bound`, then
   asks for device tokens with its key as any device does (devices/tokens.py).
   With `wait_s` (`?wait=`, libs/held_requests.py) the question is held
   until the pairing moves — claimed, bound, denied — or expires: the phone
   asks a few times in a pairing's minutes instead of twice a second. The
   claim and the decision wake it at their commit in this process; another
   replica's, through the pairings' change stream.

A pairing nobody claims or approves expires; its document goes a day later
(the audit records stay).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from libs.approvals import ApprovalRequest
from libs.crypto import keyed_hash
from libs.events.topics import IDENTITY
from libs.tokens import thumbprint

from ..approvals import queue
from ..approvals.decisions import PLATFORM_REQUESTER
from ..collections import ACCOUNTS, DEVICE_PAIRINGS, PAIRING_GUESSES
from ..errors import (
    AccountInactive,
    InvalidPairingCode,
    NoSuchPairing,
    PairingUnusable,
    TooManyPairingCodes,
)
from ..identity.activation import ALPHABET, normalise
from .binding import NewDeviceKey, consume_nonce, passkey_audit, verify_passkey, verify_possession
from .protection import KeyProtection
from .registry import new_device

if TYPE_CHECKING:
    from ..context import Auth
    from .tokens import DeviceContext

ACTION = "add_device"
CODE_LENGTH = 8  # 31^8 ≈ 2^39.6


class PairingRequest(NewDeviceKey):
    __doc__ = """The new phone's request: its public key, the name it goes by, and the proof of possession (as activation's)."""


def code_hash(hash_key: bytes, code: str) -> str:
    """What a pairing code is stored and looked up as (any spelling of it)."""
    return keyed_hash(hash_key, normalise(code), purpose="pairing-code")


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


async def start(auth: "Auth", request: PairingRequest) -> dict[str, Any]:
    """The new phone's side: a pairing bound to its key, with the code it shows and the id it polls."""
    jwk, nonce = verify_possession(request, auth.devices_audience)  # public_key and proof, as activation's
    passkey = await verify_passkey(auth, request, nonce)  # the same nonce, single use for both
    await consume_nonce(auth, nonce)
    now = auth.clock.now()
    expires_at = (now + timedelta(seconds=auth.settings.pairing_ttl_s)).replace(microsecond=0)
    pairing_id = f"pair-{secrets.token_urlsafe(24)}"
    for _ in range(5):  # a code still alive elsewhere (unique index): draw again
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        try:
            await auth.db[DEVICE_PAIRINGS].insert_one({
                "_id": pairing_id, "code_hash": code_hash(auth.settings.hash_key, code), "status": "waiting",
                "public_jwk": jwk, "jkt": thumbprint(jwk), "device_name": request.device_name,
                "key_protection": request.key_protection.on_device(), **passkey,
                "created_at": now, "expires_at": expires_at, "purge_at": expires_at + timedelta(days=1)})
            break
        except DuplicateKeyError:
            continue
    else:  # pragma: no cover - five collisions in a space of 2^39
        raise RuntimeError("could not draw a free pairing code")
    return {"pairing_id": pairing_id, "code": display(code), "status": "waiting",
            "expires_at": expires_at.isoformat(), "key_thumbprint": thumbprint(jwk)}


def _status(doc: dict[str, Any], now: datetime) -> str:
    if doc["status"] in ("waiting", "claimed") and now >= doc["expires_at"]:
        return "expired"
    return doc["status"]


# Where a pairing may still move from; the others are where it ends.
OPEN = ("waiting", "claimed")


async def view(auth: "Auth", pairing_id: str, *, wait_s: float = 0) -> dict[str, Any]:
    """What the new phone asks: the status, and once bound its device id and account id.

    `wait_s`: while the pairing still stands where it stood when asked (waiting, or claimed), hold the phone up to
    that long (never past the pairing's expiry) until it moves; then the pairing as it is."""
    held = auth.pairings_held
    if wait_s <= 0 or held is None:
        return _answer(await _read(auth, pairing_id), auth.clock.now())
    asked_at: str | None = None  # the status when asked: the phone has that one already

    def holdable_s(doc: dict[str, Any]) -> float:
        nonlocal asked_at
        now = auth.clock.now()
        status = _status(doc, now)
        asked_at = asked_at or status
        if status != asked_at or status not in OPEN:
            return 0.0
        return (doc["expires_at"] - now).total_seconds()

    # One pairing's phone takes at most its own share of the places (held_requests.max_held_per_client).
    doc = await held.hold(pairing_id, pairing_id, wait_s, lambda: _read(auth, pairing_id), holdable_s)
    return _answer(doc, auth.clock.now())


async def _read(auth: "Auth", pairing_id: str) -> dict[str, Any]:
    doc = await auth.db[DEVICE_PAIRINGS].find_one({"_id": pairing_id})
    if doc is None:
        raise NoSuchPairing("no such pairing (or it ended more than a day ago)")
    return doc


def _answer(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    answer = {"pairing_id": doc["_id"], "status": _status(doc, now),
              "expires_at": doc["expires_at"].isoformat(), "device_name": doc["device_name"], "key_thumbprint": doc["jkt"]}
    if doc.get("matching_code"):  # claimed: the new phone shows it beside the old phone's prompt
        answer["matching_code"] = doc["matching_code"]
    if doc["status"] == "bound":
        answer |= {"device_id": doc["device_id"], "account_id": doc["account_id"]}
    return answer


def _moved(auth: "Auth", pairing_id: str) -> None:
    """The pairing moved in the current transaction: the new phone's held question (in this process) looks at the
    commit — not before, when it would read the pairing as it was."""
    held = auth.pairings_held
    if held is not None:
        auth.at_commit(("pairing-moved", pairing_id), lambda: held.answered_here(pairing_id))


async def _take_guess(auth: "Auth", account_id: str, now: datetime) -> int:
    """Count one code entered by the account, atomically before it is looked up; the tries left after it."""
    settings, guesses = auth.settings, auth.db[PAIRING_GUESSES]
    limit = settings.pairing_max_wrong_codes
    for _ in range(3):
        counted = await guesses.find_one_and_update(
            {"_id": account_id, "window_ends": {"$gt": now}, "count": {"$lt": limit}}, {"$inc": {"count": 1}},
            return_document=ReturnDocument.AFTER)
        if counted is not None:
            return limit - counted["count"]
        window_ends = now + timedelta(seconds=settings.pairing_wrong_code_window_s)
        restarted = await guesses.update_one({"_id": account_id, "window_ends": {"$lte": now}},
                                             {"$set": {"count": 1, "window_ends": window_ends}})
        if restarted.modified_count == 1:
            return limit - 1
        current = await guesses.find_one({"_id": account_id})
        if current is None:
            try:
                await guesses.insert_one({"_id": account_id, "count": 1, "window_ends": window_ends})
                return limit - 1
            except DuplicateKeyError:
                continue  # another try of the same account started the window: count against it
        if current["window_ends"] > now and current["count"] >= limit:
            retry_after = int((current["window_ends"] - now).total_seconds()) + 1
            raise TooManyPairingCodes("too many wrong pairing codes: wait and try again", retry_after=retry_after)
    raise TooManyPairingCodes("too many pairing codes at once: try again", retry_after=1)


async def claim(auth: "Auth", device: "DeviceContext", code: str) -> dict[str, Any]:
    """The old phone's side: the code it was shown claims the pairing for its account and queues the prompt."""
    now = auth.clock.now()
    left = await _take_guess(auth, device.account_id, now)
    wanted = code_hash(auth.settings.hash_key, code)
    doc = await auth.db[DEVICE_PAIRINGS].find_one({"code_hash": wanted, "status": "waiting", "expires_at": {"$gt": now}})
    if doc is None:
        raise InvalidPairingCode("no new device is waiting with this code (wrong, expired or used)", attempts_left=left)
    expires_at = (now + timedelta(seconds=auth.settings.pairing_approval_ttl_s)).replace(microsecond=0)
    matching_code = f"{secrets.randbelow(10000):04d}"
    prompt = ApprovalRequest(
        approval_id=f"pair-{uuid.uuid4().hex}",
        account_id=device.account_id,
        action=ACTION,
        requester=PLATFORM_REQUESTER,
        purpose="Add a new device to your Harbour ID",
        details={"device_name": doc["device_name"], "key_thumbprint": doc["jkt"],
                 "warning": "Approve only if the new device is in your hands and shows the same matching code: "
                            "it will act for you as this one does"},
        matching_code=matching_code,
        expires_at=expires_at,
    )

    async def work(session: AsyncClientSession) -> None:
        claimed = await auth.db[DEVICE_PAIRINGS].update_one(
            {"_id": doc["_id"], "status": "waiting", "expires_at": {"$gt": now}},
            {"$set": {"status": "claimed", "account_id": device.account_id, "claimed_by": device.device_id,
                      "claimed_at": now, "approval_id": prompt.approval_id, "matching_code": matching_code,
                      "expires_at": expires_at,
                      "purge_at": expires_at + timedelta(days=1)}},
            session=session)
        if claimed.modified_count != 1:  # another phone entered it first
            raise InvalidPairingCode("no new device is waiting with this code (wrong, expired or used)",
                                     attempts_left=left)
        _moved(auth, doc["_id"])
        await queue.enqueue(auth, session, prompt)
        await auth.audit(session, subject=device.account_id, action="device.pair_claim", actor=device.device_id,
                         pairing_id=doc["_id"], approval_id=prompt.approval_id, key_thumbprint=doc["jkt"])

    await auth.transaction(work)
    # A right code is not a wrong one: it gives its try back.
    await auth.db[PAIRING_GUESSES].update_one({"_id": device.account_id, "count": {"$gt": 0}}, {"$inc": {"count": -1}})
    return {"approval_id": prompt.approval_id, "status": "pending", "expires_at": expires_at.isoformat(),
            "device_name": doc["device_name"], "key_thumbprint": doc["jkt"], "matching_code": matching_code}


async def on_decision(auth: "Auth", session: AsyncClientSession, approval: dict[str, Any], decision: str) -> dict[str, Any]:
    """The finisher of an `add_device` prompt, inside the decision's transaction: approved, the new device is bound."""
    db, now = auth.db, auth.clock.now()
    account_id = approval["account_id"]
    doc = await db[DEVICE_PAIRINGS].find_one({"approval_id": approval["_id"], "account_id": account_id}, session=session)
    if doc is None or doc["status"] != "claimed" or now >= doc["expires_at"]:
        raise PairingUnusable("this pairing can no longer add a device")
    if decision != "approve":
        await db[DEVICE_PAIRINGS].update_one({"_id": doc["_id"], "status": "claimed"},
                                             {"$set": {"status": "denied", "decided_at": now}}, session=session)
        _moved(auth, doc["_id"])
        await auth.audit(session, subject=account_id, action="device.pair", actor=approval["device_id"],
                         outcome="denied", pairing_id=doc["_id"])
        return {}
    account = await db[ACCOUNTS].find_one({"_id": account_id}, {"state": 1, "assurance": 1}, session=session)
    if account is None or account["state"] != "active":
        raise AccountInactive("the account is not active")
    device_id = f"dev-{uuid.uuid4().hex}"
    bound = await db[DEVICE_PAIRINGS].update_one(
        {"_id": doc["_id"], "status": "claimed"},
        {"$set": {"status": "bound", "device_id": device_id, "bound_at": now, "approved_by": approval["device_id"]}},
        session=session)
    if bound.modified_count != 1:
        raise PairingUnusable("this pairing can no longer add a device")
    _moved(auth, doc["_id"])
    passkey = {"passkey": doc["passkey"]} if doc.get("passkey") else {}
    await new_device(auth, session, account, device_id=device_id, name=doc["device_name"], jwk=doc["public_jwk"], now=now,
                     added_by=approval["device_id"], **doc.get("key_protection", KeyProtection().on_device()), **passkey)
    await auth.publish(session, IDENTITY, "identity.device_added", account_id, {
        "account_id": account_id, "device_id": device_id, "approved_by": approval["device_id"], "how": "paired"})
    await auth.audit(session, subject=account_id, action="device.pair", actor=approval["device_id"], outcome="bound",
                     pairing_id=doc["_id"], device_id=device_id, key_thumbprint=doc["jkt"], **passkey_audit(passkey))
    return {}

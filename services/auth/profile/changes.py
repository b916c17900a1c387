"""Contact details changed by the citizen from the app: phone and e-mail verified by a one-time code, address self-declared.

1. `request_change` (a device of the account, `POST /v1/profile/changes`):
   - `address`: self-declared, applied at once — `identity.profile_updated`
     with the new value sealed to formfill, method `self_declared`;
   - `phone` / `email`: a pending change is stored with the new value sealed to
     formfill and to notify (auth cannot open either: it keeps no personal
     data) and a 6-digit code as a keyed hash bound to the change; in the
     same transaction `identity.contact_verification` carries the address and
     the code sealed to notify, which sends the code by SMS or e-mail to the
     NEW address (the current one proves nothing about the new one).
2. `confirm_change` (`POST /v1/profile/changes/{id}/confirmation`, the code):
   each try uses up one attempt atomically before the code is compared (as
   activation codes do); a wrong code changes nothing else, the fifth wrong
   one kills the change. The right one marks it used and publishes
   `identity.profile_updated` with the sealed value(s) kept from step 1,
   method `one_time_code`: formfill updates the vault (and tells the relying
   parties holding a standing consent), notify takes the verified address.

A new request for the same field replaces the pending one (its code dies);
an account may make at most `MAX_CHANGES_PER_HOUR` changes an hour (a window
from its first change, counted atomically), addresses included (each one
sends a message to someone, or tells relying parties).
Changes go an hour after they were made (TTL), used or not; an address's is
kept without its value, only to be counted.
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.crypto import keyed_hash, seal
from libs.events.topics import IDENTITY

from ..collections import PROFILE_CHANGES
from .errors import ChangeDone, CodeExpired, CodeLocked, InvalidCode, NoSuchChange, TooManyChanges

if TYPE_CHECKING:
    from ..context import Auth
    from ..devices.tokens import DeviceContext

CODE_DIGITS = 6
CODE_TTL_S = 10 * 60
MAX_ATTEMPTS = 5
MAX_CHANGES_PER_HOUR = 5
KEPT_S = 3600  # a change (used, dead or pending) is kept this long after it was made: the hourly limit counts them

PHONE = r"^\+[1-9][0-9]{6,14}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
CHANNEL = {"phone": "sms", "email": "email"}  # where the code of a change goes: to the new address itself

Field_ = Literal["phone", "email", "address"]


class ProfileChangeBody(BaseModel):
    __doc__ = """One contact detail and its new value: phone (E.164), email, or the postal address."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    field: Field_
    value: str = Field(min_length=3, max_length=300, repr=False)

    @model_validator(mode="after")
    def _shape(self) -> "ProfileChangeBody":
        if self.field == "phone" and not re.fullmatch(PHONE, self.value):
            raise ValueError("a phone number is E.164: + and 7 to 15 digits")
        if self.field == "email" and (len(self.value) > 254 or not re.fullmatch(EMAIL, self.value)):
            raise ValueError("not an e-mail address")
        if self.field == "address" and len(self.value) < 5:
            raise ValueError("an address has at least 5 characters")
        return self


class ConfirmationBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(min_length=1, max_length=20, repr=False, description="the one-time code sent to the new address")


class ProfileChange(BaseModel):
    __doc__ = """A change asked for: `code-sent` (phone, e-mail: confirm with the code before `expires_at`) or `accepted`
    (address: applied, self-declared); after the confirmation `verified`."""

    model_config = ConfigDict(extra="forbid")
    field: Field_
    status: Literal["code-sent", "accepted", "verified"]
    change_id: str | None = None
    channel: Literal["sms", "email"] | None = None
    expires_at: str | None = None
    verified_at: str | None = None


def _code_hash(hash_key: bytes, change_id: str, code: str) -> str:
    return keyed_hash(hash_key, f"{change_id}\x00{code.replace(' ', '').replace('-', '')}", purpose="contact-code")


def _provenance(method: str, at: datetime, channel: str | None = None) -> dict[str, Any]:
    return {"method": method, "time": at.isoformat(), **({"channel": channel} if channel else {})}


async def request_change(auth: "Auth", device: "DeviceContext", body: ProfileChangeBody) -> ProfileChange:
    settings = auth.settings
    now = auth.clock.now()
    change_id = f"chg-{uuid.uuid4().hex}"
    sealed_profile = seal({body.field: body.value}, settings.formfill_sealing_jwk)

    if body.field == "address":
        async def apply(session: AsyncClientSession) -> None:
            await _within_limit(auth, session, device, now)
            # Kept (without the value) only to count it: each change is told to relying parties with a standing consent.
            await auth.db[PROFILE_CHANGES].insert_one({
                "_id": change_id, "account_id": device.account_id, "device_id": device.device_id, "field": body.field,
                "status": "applied", "created_at": now, "purge_at": now + timedelta(seconds=KEPT_S)}, session=session)
            await _published(auth, session, device, change_id, body.field, sealed_profile, None,
                             _provenance("self_declared", now))

        await auth.transaction(apply)
        return ProfileChange(field=body.field, status="accepted", change_id=change_id)

    channel = CHANNEL[body.field]
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    expires_at = now + timedelta(seconds=CODE_TTL_S)

    async def ask(session: AsyncClientSession) -> None:
        await _within_limit(auth, session, device, now)
        # A new request for the same field replaces the pending one: its code dies.
        await auth.db[PROFILE_CHANGES].update_many(
            {"account_id": device.account_id, "field": body.field, "status": "open"}, {"$set": {"status": "replaced"}},
            session=session)
        await auth.db[PROFILE_CHANGES].insert_one({
            "_id": change_id, "account_id": device.account_id, "device_id": device.device_id, "field": body.field,
            "channel": channel, "sealed_profile": sealed_profile,
            "sealed_contacts": seal({body.field: body.value}, settings.notify_sealing_jwk),
            "code_hash": _code_hash(settings.hash_key, change_id, code), "attempts": 0, "status": "open",
            "expires_at": expires_at, "created_at": now, "purge_at": now + timedelta(seconds=KEPT_S)}, session=session)
        # The code and the new address, to notify only: it sends the code to that address.
        await auth.publish(session, IDENTITY, "identity.contact_verification", device.account_id, {
            "account_id": device.account_id, "change_id": change_id, "field": body.field, "channel": channel,
            "expires_at": expires_at.isoformat(),
            "sealed_message": seal({"address": body.value, "code": code}, settings.notify_sealing_jwk)})
        await auth.audit(session, subject=device.account_id, action="profile.change_requested", actor=device.device_id,
                         change_id=change_id, field=body.field)

    await auth.transaction(ask)
    return ProfileChange(field=body.field, status="code-sent", change_id=change_id, channel=channel,
                         expires_at=expires_at.isoformat())


async def _within_limit(auth: "Auth", session: AsyncClientSession, device: "DeviceContext", now: datetime) -> None:
    """One more change in the account's hour (a window from its first change), taken by a conditional `$inc` on one
    document: concurrent requests conflict on it, so a burst cannot count the same total and all pass."""
    changes, window_id = auth.db[PROFILE_CHANGES], f"window:{device.account_id}"
    taken = await changes.find_one_and_update(
        {"_id": window_id, "window_ends": {"$gt": now}, "count": {"$lt": MAX_CHANGES_PER_HOUR}}, {"$inc": {"count": 1}},
        session=session)
    if taken is not None:
        return
    window = await changes.find_one({"_id": window_id}, session=session)
    if window is not None and window["window_ends"] > now:
        raise TooManyChanges(f"at most {MAX_CHANGES_PER_HOUR} profile changes an hour",
                             retry_after=int((window["window_ends"] - now).total_seconds()) + 1)
    ends = now + timedelta(seconds=KEPT_S)
    await changes.replace_one({"_id": window_id}, {"account_id": device.account_id, "count": 1, "window_ends": ends,
                                                   "purge_at": ends}, upsert=True, session=session)


async def confirm_change(auth: "Auth", device: "DeviceContext", change_id: str, body: ConfirmationBody) -> ProfileChange:
    changes = auth.db[PROFILE_CHANGES]
    now = auth.clock.now()
    # One attempt used up before the code is compared, in one conditional update: a burst of guesses cannot all
    # read the same count.
    taken = await changes.find_one_and_update(
        {"_id": change_id, "account_id": device.account_id, "status": "open", "attempts": {"$lt": MAX_ATTEMPTS},
         "expires_at": {"$gt": now}},
        {"$inc": {"attempts": 1}}, return_document=ReturnDocument.AFTER)
    if taken is None:
        await _refuse_unusable(auth, device, change_id, now)
    assert taken is not None
    if not hmac.compare_digest(taken["code_hash"], _code_hash(auth.settings.hash_key, change_id, body.code)):
        left = MAX_ATTEMPTS - taken["attempts"]
        if left <= 0:
            await changes.update_one({"_id": change_id, "status": "open"}, {"$set": {"status": "locked"}})
            raise CodeLocked("too many wrong codes: ask for the change again")
        raise InvalidCode("the code is wrong", attempts_left=left)

    async def verify(session: AsyncClientSession) -> None:
        used = await changes.update_one({"_id": change_id, "status": "open", "code_hash": taken["code_hash"]},
                                        {"$set": {"status": "used", "verified_at": now},
                                         "$unset": {"sealed_profile": "", "sealed_contacts": ""}}, session=session)
        if used.modified_count != 1:
            raise ChangeDone("the change was already confirmed")
        await _published(auth, session, device, change_id, taken["field"], taken["sealed_profile"], taken["sealed_contacts"],
                         _provenance("one_time_code", now, taken["channel"]))

    await auth.transaction(verify)
    return ProfileChange(field=taken["field"], status="verified", change_id=change_id, channel=taken["channel"],
                         verified_at=now.isoformat())


async def _refuse_unusable(auth: "Auth", device: "DeviceContext", change_id: str, now: datetime) -> None:
    doc = await auth.db[PROFILE_CHANGES].find_one({"_id": change_id, "account_id": device.account_id},
                                                  {"status": 1, "attempts": 1, "expires_at": 1, "code_hash": 1})
    if doc is None or "code_hash" not in doc or doc["status"] == "replaced":  # no code: an address, or the hour's count
        raise NoSuchChange("no such change: ask for it again")
    if doc["status"] == "used":
        raise ChangeDone("the change was already confirmed")
    if doc["status"] == "locked" or doc.get("attempts", 0) >= MAX_ATTEMPTS:
        raise CodeLocked("too many wrong codes: ask for the change again")
    raise CodeExpired("the code has expired: ask for the change again")


async def _published(auth: "Auth", session: AsyncClientSession, device: "DeviceContext", change_id: str, field: str,
                     sealed_profile: str, sealed_contacts: str | None, verification: dict[str, Any]) -> None:
    """identity.profile_updated: the new value sealed to formfill (and, verified, to notify), how it was verified, when."""
    data: dict[str, Any] = {"account_id": device.account_id, "change_id": change_id, "fields": [field],
                            "verification": verification, "sealed_profile": sealed_profile}
    if sealed_contacts is not None:
        data["sealed_contacts"] = sealed_contacts
    await auth.publish(session, IDENTITY, "identity.profile_updated", device.account_id, data)
    await auth.audit(session, subject=device.account_id, action="profile.update", actor=device.device_id,
                     change_id=change_id, field=field, method=verification["method"])

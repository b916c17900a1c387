"""A citizen's notification preferences: language, channels, agencies they opted out of, quiet hours.

Channels: the inbox always (the record of what agencies sent), and any of
push, e-mail and SMS. An agency may give an order of channels for its
message; the first one the citizen turned on (and, for e-mail and SMS, gave an
address for) carries it (`choose_channel`). The e-mail address and phone
number are the citizen's own, given here from the app; they are kept sealed
with notify's keys (libs/crypto) like every other piece of personal data and
shown to no one but their owner (docs/architecture.md, notify's contact
details).

Quiet hours are Hong Kong local time (UTC+8 all year: Hong Kong has no
daylight saving). A normal-priority message that would arrive inside them
waits until they end; a high-priority one (approval prompts, security alerts,
agencies' urgent messages) does not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator
from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto import FieldCipher

from .collections import ACCOUNTS, PREFERENCES
from .templates import Language

HONG_KONG = timezone(timedelta(hours=8), "HKT")
Channel = Literal["inbox", "push", "email", "sms"]
DEFAULT_CHANNELS = ["inbox", "push"]
# The channels beside the inbox, in the order used when the agency gives none; platform messages (approval prompts,
# security alerts) go by push only.
AgencyChannel = Literal["push", "email", "sms"]
DEFAULT_ORDER = ("push", "email", "sms")
PLATFORM_ORDER = ("push",)
EMAIL = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
PHONE = r"^\+[1-9][0-9]{6,14}$"
CONTACTS = ("email", "phone")


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(description="HH:MM, Hong Kong time", examples=["22:00"])
    end: str = Field(description="HH:MM, Hong Kong time; before start means the next morning", examples=["07:00"])

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("a time of day as HH:MM (00:00 to 23:59)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> "QuietHours":
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class PreferencesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: Language | None = Field(default=None, description="absent: the language given at enrolment")
    channels: list[Channel] = Field(default_factory=lambda: list(DEFAULT_CHANNELS), max_length=4)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL, description="where e-mails go (the `email` channel)")
    phone: str | None = Field(default=None, pattern=PHONE, description="E.164; where SMS go (the `sms` channel)")
    opted_out: list[str] = Field(default_factory=list, max_length=200, description="client ids of agencies whose messages are suppressed")
    quiet_hours: QuietHours | None = None

    @field_validator("channels")
    @classmethod
    def _inbox_always(cls, values: list[str]) -> list[str]:
        if "inbox" not in values:
            raise ValueError("the inbox cannot be turned off: it is the record of what agencies sent")
        return sorted(set(values))

    @model_validator(mode="after")
    def _addresses(self) -> "PreferencesBody":
        if "email" in self.channels and not self.email:
            raise ValueError("the email channel needs an email address")
        if "sms" in self.channels and not self.phone:
            raise ValueError("the sms channel needs a phone number")
        return self

    @field_validator("opted_out")
    @classmethod
    def _client_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", value):
                raise ValueError("client ids only")
        return sorted(set(values))


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_until(quiet: dict[str, str] | None, now: datetime) -> datetime | None:
    """If `now` falls in the quiet hours, the UTC time they end; else None."""
    if not quiet:
        return None
    local = now.astimezone(HONG_KONG)
    start, end = _clock(quiet["start"]), _clock(quiet["end"])
    clock = local.timetz().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
    else:  # over midnight, e.g. 22:00 → 07:00
        inside = clock >= start or clock < end
    if not inside:
        return None
    ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return ends.astimezone(UTC)


class Preferences(BaseModel):
    language: Language | None
    effective_language: Language
    channels: list[Channel]
    email: str | None = Field(default=None, description="given when the citizen turned e-mail on")
    phone: str | None = Field(default=None, description="given when the citizen turned SMS on")
    opted_out: list[str]
    quiet_hours: QuietHours | None

    @model_serializer(mode="wrap")
    def _contacts_when_given(self, handler):  # no return annotation: the schema stays the model's own
        out = handler(self)
        for name in CONTACTS:
            if out.get(name) is None:
                out.pop(name, None)
        return out


def contacts(cipher: FieldCipher, account_id: str, pref: dict[str, Any]) -> dict[str, str]:
    """The citizen's e-mail address and phone number, opened (those they gave)."""
    sealed = pref.get("contacts_sealed")
    return cipher.decrypt_record(sealed, record_id=account_id) if sealed else {}


def choose_channel(order: list[str] | tuple[str, ...] | None, pref: dict[str, Any], *, platform: bool = False) -> str:
    """The channel beside the inbox that carries a message: the first of the agency's order (or the default order) that
    the citizen turned on, e-mail and SMS only with an address; "inbox" when none is."""
    enabled = set(pref.get("channels", DEFAULT_CHANNELS))
    held = set(pref.get("contact_kinds", []))  # which addresses are sealed in `contacts_sealed` (without opening them)
    for channel in (PLATFORM_ORDER if platform else (order or DEFAULT_ORDER)):
        if channel in enabled and (channel == "push" or {"email": "email", "sms": "phone"}[channel] in held):
            return channel
    return "inbox"


async def show(db: AsyncDatabase, cipher: FieldCipher, account_id: str) -> Preferences:
    doc = await db[PREFERENCES].find_one({"_id": account_id}) or {}
    account = await db[ACCOUNTS].find_one({"_id": account_id}, {"language": 1}) or {}
    return Preferences(
        language=doc.get("language"),
        effective_language=doc.get("language") or account.get("language") or "en",
        channels=doc.get("channels", list(DEFAULT_CHANNELS)),
        opted_out=doc.get("opted_out", []),
        quiet_hours=doc.get("quiet_hours"),
        **contacts(cipher, account_id, doc),
    )


async def replace(db: AsyncDatabase, cipher: FieldCipher, account_id: str, body: PreferencesBody, now: datetime) -> Preferences:
    # Kept only while their channel is on (least privilege): turning e-mail off forgets the address.
    given = {name: getattr(body, name) for name, channel in (("email", "email"), ("phone", "sms"))
             if getattr(body, name) and channel in body.channels}
    # The address and number sealed (bound to the account id); only which of them there are stays in the clear.
    sealed = {"contacts_sealed": cipher.encrypt_record(given, record_id=account_id)} if given else {}
    change: dict[str, Any] = {"$set": {**body.model_dump(exclude=set(CONTACTS)), **sealed, "contact_kinds": sorted(given),
                                       "updated_at": now}}
    if not given:
        change["$unset"] = {"contacts_sealed": ""}
    await db[PREFERENCES].update_one({"_id": account_id}, change, upsert=True)
    return await show(db, cipher, account_id)

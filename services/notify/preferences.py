"""A citizen's notification preferences: language, channels, agencies they opted out of, quiet hours.

Quiet hours are Hong Kong local time (UTC+8 all year: Hong Kong has no
daylight saving). A normal-priority message that would arrive inside them
waits until they end; a high-priority one (approval prompts, security alerts,
agencies' urgent messages) does not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymongo.asynchronous.database import AsyncDatabase

from .collections import ACCOUNTS, PREFERENCES
from .templates import Language

HONG_KONG = timezone(timedelta(hours=8), "HKT")
Channel = Literal["inbox", "push"]
DEFAULT_CHANNELS = ["inbox", "push"]


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
    channels: list[Channel] = Field(default_factory=lambda: list(DEFAULT_CHANNELS), max_length=2)
    opted_out: list[str] = Field(default_factory=list, max_length=200, description="client ids of agencies whose messages are suppressed")
    quiet_hours: QuietHours | None = None

    @field_validator("channels")
    @classmethod
    def _inbox_always(cls, values: list[str]) -> list[str]:
        if "inbox" not in values:
            raise ValueError("the inbox cannot be turned off: it is the record of what agencies sent")
        return sorted(set(values))

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
    opted_out: list[str]
    quiet_hours: QuietHours | None


async def show(db: AsyncDatabase, account_id: str) -> Preferences:
    doc = await db[PREFERENCES].find_one({"_id": account_id}) or {}
    account = await db[ACCOUNTS].find_one({"_id": account_id}, {"language": 1}) or {}
    return Preferences(
        language=doc.get("language"),
        effective_language=doc.get("language") or account.get("language") or "en",
        channels=doc.get("channels", list(DEFAULT_CHANNELS)),
        opted_out=doc.get("opted_out", []),
        quiet_hours=doc.get("quiet_hours"),
    )


async def replace(db: AsyncDatabase, account_id: str, body: PreferencesBody, now: datetime) -> Preferences:
    await db[PREFERENCES].update_one({"_id": account_id}, {"$set": {**body.model_dump(), "updated_at": now}}, upsert=True)
    return await show(db, account_id)

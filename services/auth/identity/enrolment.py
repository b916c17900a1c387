"""Enrolment: validate the identity data, proof the selfie, create the account, seal the profile for formfill.

The selfie lives only in this request's memory: it is decoded and scored by
the `FaceMatcher` and then dropped — never stored, logged or published.
The card number is kept only as a keyed hash (duplicate detection); the
profile leaves auth sealed to formfill's key.

A card whose account was revoked enrols again as a new account (a new id, so
new pairwise subjects: they derive from it): in the same transaction the
revoked account gives up the card's place in the unique `card_hash`
(`revoked:<its id>`, the keyed hash kept in `revoked_card_hash`) and names
its successor (`re_enrolled_as`); it stays revoked, with its devices,
subjects and audit trail, for audit. Any other state is still a duplicate.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from libs.backbone import ServiceContext
from libs.crypto import keyed_hash, normalise_hkid, seal
from libs.events.topics import IDENTITY

from ..collections import ACCOUNTS
from ..errors import DuplicateEnrolment, ProofingFailed, SelfieRefused
from ..settings import AuthSettings
from .activation import ActivationCode, new_activation
from .hkid import InvalidHKID, parse_hkid
from .proofing import MAX_SELFIE_BYTES, FaceMatcher, SelfieRejected

MINIMUM_AGE = 11
HONG_KONG = timezone(timedelta(hours=8))  # no daylight saving
Assurance = Literal["basic", "plus"]


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


class EnrolmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id_number: str = Field(min_length=8, max_length=14, description="Hong Kong identity card number, e.g. A123456(3)")
    name_en: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z ,.'-]*$")
    name_zh: str | None = Field(default=None, min_length=1, max_length=20)
    date_of_birth: date
    gender: Literal["F", "M", "X"]
    phone: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164")
    email: str = Field(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
    address: str = Field(min_length=5, max_length=300)
    language: Literal["en", "zh-HK", "zh-CN"] = "zh-HK"
    selfie: str = Field(min_length=1, description="JPEG or PNG, base64; at most 2 MiB decoded", repr=False)

    @field_validator("id_number")
    @classmethod
    def _hkid(cls, value: str) -> str:
        try:
            return parse_hkid(value)
        except InvalidHKID as exc:
            raise ValueError(str(exc)) from None

    @field_validator("name_zh")
    @classmethod
    def _chinese(cls, value: str | None) -> str | None:
        if value is not None and not all("\u3400" <= ch <= "\u9fff" or ch in "\uff0e\u00b7" for ch in value):
            raise ValueError("the Chinese name must be written in Chinese characters")
        return value

    @field_validator("date_of_birth")
    @classmethod
    def _age(cls, value: date) -> date:
        # Request validation has no service context: the wall clock's day in Hong Kong.
        today = datetime.now(HONG_KONG).date()
        if value > today:
            raise ValueError("the date of birth is in the future")
        if age_on(value, today) < MINIMUM_AGE:
            raise ValueError(f"citizens must be at least {MINIMUM_AGE} years old to enrol")
        return value

    @field_validator("selfie")
    @classmethod
    def _selfie_size(cls, value: str) -> str:
        # Cheap bound before decoding: base64 is 4 characters per 3 bytes.
        if len(value) > (MAX_SELFIE_BYTES + 2) // 3 * 4 + 4:
            raise ValueError(f"the selfie must be at most {MAX_SELFIE_BYTES // (1024 * 1024)} MiB")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the selfie is not valid base64") from None
        return value

    def selfie_bytes(self) -> bytes:
        return base64.b64decode(self.selfie, validate=True)

    def profile(self) -> dict[str, str | None]:
        """The personal data formfill will hold (the selfie is not part of it)."""
        return {
            "id_number": self.id_number,
            "name_en": self.name_en,
            "name_zh": self.name_zh,
            "date_of_birth": self.date_of_birth.isoformat(),
            "gender": self.gender,
            "phone": self.phone,
            "email": self.email,
            "address": self.address,
        }


def card_hash(hash_key: bytes, id_number: str) -> str:
    return keyed_hash(hash_key, normalise_hkid(id_number), purpose="hkid")


def identity_hash(hash_key: bytes, request: EnrolmentRequest) -> str:
    """A keyed hash of what is printed on the card (names, birth date, gender), for a later in-person proofing.

    A kiosk replacing a lost phone or upgrading an account proofs the citizen
    again (identity/reproofing.py): the card-printed data must match the
    enrolment's exactly (the English name compared case- and space-insensitively).
    Contact data (phone, e-mail, address, language) is not part of it: it may
    have changed. auth still keeps no personal data in the clear.
    """
    name_en = " ".join(request.name_en.split()).casefold()
    printed = "\x00".join((name_en, request.name_zh or "", request.date_of_birth.isoformat(), request.gender))
    return keyed_hash(hash_key, printed, purpose="identity-data")


async def create_account(
    ctx: ServiceContext,
    session: AsyncClientSession,
    request: EnrolmentRequest,
    *,
    assurance: Assurance,
    enrolled_by: str,
    proofing_score: float,
    revoked_account: str | None = None,
) -> tuple[str, ActivationCode]:
    """Write the account, its activation code and the events, inside the caller's transaction.

    `revoked_account`: the revoked account this card had, which gives the card up to the new one (module docstring).
    """
    settings: AuthSettings = ctx.settings
    account_id = f"acct-{uuid.uuid4().hex}"
    now = ctx.clock.now()
    activation = new_activation(settings.hash_key, ttl_s=settings.activation_ttl_s, now=now)
    hashed = card_hash(settings.hash_key, request.id_number)
    if revoked_account is not None:
        released = await ctx.db[ACCOUNTS].update_one(
            {"_id": revoked_account, "state": "revoked", "card_hash": hashed},
            {"$set": {"card_hash": f"revoked:{revoked_account}", "revoked_card_hash": hashed,
                      "re_enrolled_as": account_id, "re_enrolled_at": now}},
            session=session)
        if released.modified_count != 1:  # reinstated, closed or re-enrolled meanwhile
            raise DuplicateEnrolment("this identity card is already enrolled")
    await ctx.db[ACCOUNTS].insert_one(
        {
            "_id": account_id,
            "card_hash": hashed,
            "identity_hash": identity_hash(settings.hash_key, request),
            "assurance": assurance,
            "state": "pending",
            "language": request.language,
            "enrolled_by": enrolled_by,
            "enrolled_at": now,
            "proofing_score": round(proofing_score, 3),
            "activation": activation.stored(),
            **({"previous_account_id": revoked_account} if revoked_account else {}),
        },
        session=session,
    )
    await ctx.publish(session, IDENTITY, "identity.enrolled", account_id, {
        "account_id": account_id,
        "assurance": assurance,
        "state": "pending",
        "language": request.language,
        "sealed_profile": seal(request.profile(), settings.formfill_sealing_jwk),
    })
    await ctx.audit(session, subject=account_id, action="identity.enrol", actor=enrolled_by, assurance=assurance,
                    **({"previous_account_id": revoked_account} if revoked_account else {}))
    if revoked_account is not None:
        await ctx.audit(session, subject=revoked_account, action="identity.re_enrolled", actor=enrolled_by,
                        new_account_id=account_id)
    return account_id, activation


async def proof_selfie(matcher: FaceMatcher, request: EnrolmentRequest) -> float:
    """The selfie's proofing score; the refusal (422) when it is no usable selfie or does not pass. Nothing written."""
    try:
        result = await matcher.match(request.selfie_bytes())
    except SelfieRejected as exc:
        raise SelfieRefused(str(exc), errors=[{"field": "selfie", "message": str(exc), "code": exc.reason}]) from None
    if not result.passed:
        raise ProofingFailed("the selfie did not pass the identity proofing check")
    return result.score

async def enrol_citizen(
    ctx: ServiceContext, matcher: FaceMatcher, request: EnrolmentRequest, *, actor: str, assurance: Assurance
) -> dict:
    """The whole enrolment: proofing, then the duplicate check, then account and events in one transaction.

    Proofing comes first on purpose: whether a card number is enrolled is
    told only to someone whose selfie passed (checked before, it answered
    that question for anyone). The duplicate answer says no more than that:
    no account id, state or date. A revoked account's card enrols anew (module docstring).
    """
    settings: AuthSettings = ctx.settings
    score = await proof_selfie(matcher, request)
    existing = await ctx.db[ACCOUNTS].find_one({"card_hash": card_hash(settings.hash_key, request.id_number)},
                                               {"_id": 1, "state": 1})
    if existing is not None and existing["state"] != "revoked":
        raise DuplicateEnrolment("this identity card is already enrolled")
    try:
        account_id, activation = await ctx.transaction(
            lambda session: create_account(
                ctx, session, request, assurance=assurance, enrolled_by=actor, proofing_score=score,
                revoked_account=existing["_id"] if existing else None,
            )
        )
    except DuplicateKeyError:
        raise DuplicateEnrolment("this identity card is already enrolled") from None
    return {
        "account_id": account_id,
        "state": "pending",
        "assurance": assurance,
        "activation_code": activation.display(),
        "activation_expires_at": activation.expires_at.isoformat(),
    }

"""One-time activation codes that bind a citizen's first device.

Shown once on the kiosk slip (or sent by SMS in production) with the
account id. Stored only as a keyed hash, valid for a short time, and locked
after a few wrong tries; a locked or used code needs a new kiosk visit
(a replacement, identity/reproofing.py: a new code for the same account).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from libs.crypto import keyed_hash

from ..errors import ActivationCodeExpired, ActivationCodeUsed, ActivationLocked

# No 0/O, 1/I/L: the code is read off paper and typed on a phone.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 10  # 31^10 ≈ 2^49.5 possibilities


@dataclass(frozen=True)
class ActivationCode:
    code: str
    code_hash: str
    expires_at: datetime

    def stored(self) -> dict:
        return {"code_hash": self.code_hash, "expires_at": self.expires_at, "attempts": 0, "status": "open"}

    def display(self) -> str:
        return f"{self.code[:5]}-{self.code[5:]}"


def _hash(hash_key: bytes, code: str) -> str:
    return keyed_hash(hash_key, code, purpose="activation-code")


def normalise(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def new_activation(hash_key: bytes, *, ttl_s: int, now: datetime) -> ActivationCode:
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return ActivationCode(code, _hash(hash_key, code), now + timedelta(seconds=ttl_s))


def refuse_unusable(stored: dict | None, *, now: datetime, max_attempts: int) -> None:
    """Raise an ActivationRefused when the stored code can no longer be used at all (used, locked or expired)."""
    if stored is None or stored["status"] == "used":
        raise ActivationCodeUsed("this activation code has already been used")
    if stored["status"] == "locked" or stored["attempts"] >= max_attempts:
        raise ActivationLocked("too many wrong codes: ask for a new activation code")
    if now >= stored["expires_at"]:
        raise ActivationCodeExpired("the activation code has expired: ask for a new one")


def code_matches(stored: dict, code: str, hash_key: bytes) -> bool:
    return hmac.compare_digest(stored["code_hash"], code_hash(hash_key, code))


def code_hash(hash_key: bytes, code: str) -> str:
    """What a typed code is stored as (any spelling of it)."""
    return _hash(hash_key, normalise(code))


async def take_attempt(accounts: AsyncCollection, account_id: str, *, now: datetime, max_attempts: int) -> dict | None:
    """Atomically use up one attempt of an open, unexpired code; the activation after it, or None when none is left.

    The count is taken before the code is compared, in one conditional update:
    concurrent guesses cannot all read the same count (read-then-write let a
    burst of wrong codes be evaluated far more than `max_attempts` times).
    The right code uses an attempt too; it then binds the device.
    """
    updated = await accounts.find_one_and_update(
        {"_id": account_id, "activation.status": "open",
         "activation.attempts": {"$lt": max_attempts}, "activation.expires_at": {"$gt": now}},
        {"$inc": {"activation.attempts": 1}},
        projection={"activation": 1},
        return_document=ReturnDocument.AFTER,
    )
    return updated["activation"] if updated else None


async def lock(accounts: AsyncCollection, account_id: str) -> None:
    await accounts.update_one({"_id": account_id, "activation.status": "open"}, {"$set": {"activation.status": "locked"}})

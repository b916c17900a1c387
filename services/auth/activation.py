"""One-time activation codes that bind a citizen's first device.

Shown once on the kiosk slip (or sent by SMS in production) with the
account id. Stored only as a keyed hash, valid for a short time, and locked
after a few wrong tries; a locked or used code needs a new enrolment visit.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from libs.crypto import keyed_hash

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


def new_activation(hash_key: bytes, *, ttl_s: int) -> ActivationCode:
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return ActivationCode(code, _hash(hash_key, code), datetime.now(UTC) + timedelta(seconds=ttl_s))


class ActivationRefused(ValueError):
    """`reason`: invalid, expired, locked or used."""

    def __init__(self, reason: str, message: str, attempts_left: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.attempts_left = attempts_left


def check_code(stored: dict | None, code: str, hash_key: bytes, *, now: datetime, max_attempts: int) -> bool:
    """True when `code` opens `stored`; raises for a code that can no longer be used at all."""
    if stored is None or stored["status"] == "used":
        raise ActivationRefused("used", "this activation code has already been used")
    if stored["status"] == "locked" or stored["attempts"] >= max_attempts:
        raise ActivationRefused("locked", "too many wrong codes: ask for a new activation code")
    if now >= stored["expires_at"]:
        raise ActivationRefused("expired", "the activation code has expired: ask for a new one")
    return hmac.compare_digest(stored["code_hash"], _hash(hash_key, normalise(code)))

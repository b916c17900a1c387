"""Keyed hashing, so an identifier can be matched without being stored.

auth keeps the identity-card number only as `keyed_hash(key, hkid, purpose="hkid")`:
equal cards give equal hashes (duplicate detection), but without the key the
hash cannot be reversed by hashing every possible card number. The purpose
separates domains, so a hash made for one use never matches one made for another.
"""

from __future__ import annotations

import hashlib
import hmac

MIN_KEY_BYTES = 32


def keyed_hash(key: bytes, value: str, *, purpose: str) -> str:
    """HMAC-SHA256 over `purpose NUL value`, as lowercase hex."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"keyed_hash needs a key of at least {MIN_KEY_BYTES} bytes")
    # A NUL inside the purpose would let ("a\0b", "c") and ("a", "b\0c") collide.
    if not purpose or "\x00" in purpose:
        raise ValueError("purpose must be a non-empty string without NUL characters")
    message = purpose.encode() + b"\x00" + value.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def normalise_hkid(value: str) -> str:
    """One spelling per card: "a123456(3)" and "A123456 (3)" both become "A1234563"."""
    return "".join(value.split()).replace("(", "").replace(")", "").upper()

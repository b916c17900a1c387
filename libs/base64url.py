"""base64url without padding (RFC 4648 §5, as JOSE and OAuth write it), encoded and decoded in one place.

`decode` is strict where the standard library is not: `urlsafe_b64decode`
silently skips characters outside the alphabet, so a mistyped key or a
standard-base64 value would decode to something. Padding is optional.
"""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """The bytes of base64url `text`, padded or not; ValueError for anything else."""
    if not isinstance(text, str) or not _ALPHABET.fullmatch(text):
        raise ValueError("not base64url")
    unpadded = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None

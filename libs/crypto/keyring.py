"""Key-encryption keys (KEKs) named by id, so they can rotate.

Configuration holds `kid1:<base64url 32 bytes>,kid2:...`; the first entry is
the current key and wraps every new data key, the others only unwrap what they
wrapped before, until `rewrap` has moved those records on. Error messages name
entries by position and id, never by their key material.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from libs import base64url

KEY_BYTES = 32  # AES-256

_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class UnknownKey(KeyError):
    """No key with this id in the keyring (retired too early, or a foreign record)."""


@dataclass(frozen=True)
class Keyring:
    current_id: str
    # repr=False: a keyring in a log line or a traceback must not print its keys.
    keys: dict[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        for kid, key in self.keys.items():
            _check_kid(kid)
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ValueError(f"key {kid!r} must be {KEY_BYTES} bytes")
        if self.current_id not in self.keys:
            raise ValueError(f"current key id {self.current_id!r} is not in the keyring")

    def current(self) -> tuple[str, bytes]:
        return self.current_id, self.keys[self.current_id]

    def get(self, kid: str) -> bytes:
        try:
            return self.keys[kid]
        except KeyError:
            raise UnknownKey(kid) from None

    @classmethod
    def from_env_value(cls, value: str) -> Keyring:
        """Parse `kid1:<base64url>,kid2:<base64url>`; the first entry is current."""
        entries = [entry.strip() for entry in value.split(",")]
        if not value.strip() or not all(entries):
            raise ValueError("keyring must be a comma-separated list of kid:base64url-key entries, none empty")
        keys: dict[str, bytes] = {}
        for position, entry in enumerate(entries, start=1):
            kid, sep, encoded = entry.partition(":")
            kid, encoded = kid.strip(), encoded.strip()
            if not sep:
                raise ValueError(f"keyring entry {position} has no ':' between key id and key")
            if not _KID.fullmatch(kid):
                raise ValueError(f"keyring entry {position}: key id must be 1-64 of A-Z a-z 0-9 . _ -")
            if kid in keys:
                raise ValueError(f"keyring entry {position}: key id {kid!r} appears twice")
            keys[kid] = _decode_key(encoded, position, kid)
        return cls(current_id=next(iter(keys)), keys=keys)


def new_key_value(kid: str) -> str:
    """A fresh `kid:<base64url>` entry, for the dev stack or a rotation."""
    _check_kid(kid)
    return f"{kid}:{base64url.encode(os.urandom(KEY_BYTES))}"


def _check_kid(kid: str) -> None:
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise ValueError("key id must be 1-64 of A-Z a-z 0-9 . _ -")


def _decode_key(encoded: str, position: int, kid: str) -> bytes:
    try:
        key = base64url.decode(encoded)
    except ValueError:
        raise ValueError(f"keyring entry {position} ({kid!r}): key is not base64url") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"keyring entry {position} ({kid!r}): key must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key

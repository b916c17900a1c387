"""The revocation list a service keeps in memory: what auth revoked, until the tokens it concerns have expired.

Three kinds of entry, each dropped once no token it could refuse is still valid:
- access-token ids (`jti`) revoked at /oidc/revoke, by a replayed code or a reused refresh token;
- devices revoked by their citizen (their device tokens carry `device_id`);
- accounts suspended, revoked or closed, by the SHA-256 of every `sub` the account has (its id, which device
  tokens carry, and its pairwise subjects, which relying parties' tokens carry). While the account is
  not active every token of it is refused; once it is active again, tokens issued before the
  suspension stay refused until they expire (stricter than forgetting them).

Pure logic (no I/O): the follower feeds it events, callers ask it about a token's claims.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOKENS_REVOKED = "revocation.tokens"
DEVICE_REVOKED = "revocation.device"
ACCOUNT_CHANGED = "revocation.account"
INACTIVE_STATES = frozenset({"suspended", "revoked", "closed"})


def subject_hash(sub: str) -> str:
    """How the topic names a subject: readers can recognise a token's `sub`, not learn one."""
    return hashlib.sha256(b"harbour-revocation\x00" + sub.encode()).hexdigest()


@dataclass
class _Account:
    inactive: bool
    issued_before: float  # tokens issued at or before this moment (the suspension) are refused
    expires_at: float


class RevocationList:
    def __init__(self) -> None:
        self.tokens: dict[str, float] = {}
        self.devices: dict[str, float] = {}
        self.accounts: dict[str, _Account] = {}

    def __len__(self) -> int:
        return len(self.tokens) + len(self.devices) + len(self.accounts)

    def apply(self, event_type: str, data: Mapping[str, Any], now: float | None = None) -> None:
        """Take one event of the revocations topic; unknown types and expired entries are ignored."""
        now = time.time() if now is None else now
        expires_at = float(data.get("expires_at", 0))
        if expires_at <= now:
            return  # read back after a restart: nothing it could refuse is still valid
        if event_type == TOKENS_REVOKED:
            for jti in data.get("jtis", ()):
                self.tokens[str(jti)] = max(expires_at, self.tokens.get(str(jti), 0.0))
        elif event_type == DEVICE_REVOKED:
            device_id = str(data["device_id"])
            self.devices[device_id] = max(expires_at, self.devices.get(device_id, 0.0))
        elif event_type == ACCOUNT_CHANGED:
            inactive = data["state"] in INACTIVE_STATES
            at = float(data["at"])
            for subject in data.get("subjects", ()):
                entry = self.accounts.get(subject)
                if inactive:
                    self.accounts[subject] = _Account(True, max(at, entry.issued_before if entry else 0.0),
                                                      max(expires_at, entry.expires_at if entry else 0.0))
                elif entry is not None:
                    entry.inactive = False  # reinstated: only tokens from before the suspension stay refused

    def refusal(self, claims: Mapping[str, Any], now: float | None = None) -> str | None:
        """Why a token with these (verified) claims is refused, or None if nothing revoked it."""
        now = time.time() if now is None else now
        jti = claims.get("jti")
        if isinstance(jti, str) and self.tokens.get(jti, 0.0) > now:
            return "the token has been revoked"
        device_id = claims.get("device_id")
        if isinstance(device_id, str) and self.devices.get(device_id, 0.0) > now:
            return "the device has been revoked"
        sub = claims.get("sub")
        entry = self.accounts.get(subject_hash(sub)) if isinstance(sub, str) else None
        if entry is not None and entry.expires_at > now:
            if entry.inactive:
                return "the citizen's account is not active"
            iat = claims.get("iat")
            if not isinstance(iat, (int, float)) or iat <= entry.issued_before:
                return "the token was issued before the citizen's account was suspended"
        return None

    def prune(self, now: float | None = None) -> int:
        """Forget entries whose tokens have all expired; return how many were dropped."""
        now = time.time() if now is None else now
        before = len(self)
        self.tokens = {k: v for k, v in self.tokens.items() if v > now}
        self.devices = {k: v for k, v in self.devices.items() if v > now}
        self.accounts = {k: v for k, v in self.accounts.items() if v.expires_at > now}
        return before - len(self)

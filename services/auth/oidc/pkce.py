"""RFC 7636 Proof Key for Code Exchange — S256 only (RFC 9700 §2.1.1: `plain` is refused)."""

from __future__ import annotations

import hashlib
import hmac
import re

from libs import base64url

VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256(verifier: str) -> str:
    return base64url.encode(hashlib.sha256(verifier.encode("ascii")).digest())


def check_challenge(challenge: str | None, method: str | None) -> str | None:
    """None when the challenge is acceptable, else why not."""
    if not challenge:
        return "code_challenge is required (PKCE)"
    if method != "S256":
        return "code_challenge_method must be S256"
    if not CHALLENGE.fullmatch(challenge):
        return "code_challenge is not a base64url SHA-256"
    return None


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    if not verifier or not VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)

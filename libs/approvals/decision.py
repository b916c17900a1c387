"""The citizen's decision: a compact JWS signed by the device key over the prompt's digest.

The app signs with `sign_decision`; auth verifies with `verify_decision`
before it records anything, and the requesting service verifies the same JWS
again from `approval.decided` (it carries the device's public key), so no
service has to take auth's word alone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from libs.tokens import InvalidToken, sign, unverified_header, verify

DECISION_TYP = "harbour-decision+jwt"
Decision = Literal["approve", "deny"]


class DecisionRejected(ValueError):
    """The decision cannot be accepted; `reason` is a short machine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DecisionClaims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_id: str = Field(min_length=1, max_length=100)
    digest: str = Field(min_length=43, max_length=43)
    decision: Decision
    # Formfill: the optional fields the citizen kept; None when the prompt offers no choice.
    selection: list[str] | None = Field(default=None, max_length=100)
    iat: int
    exp: int
    jti: str = Field(min_length=8, max_length=100)


def sign_decision(
    key: ec.EllipticCurvePrivateKey,
    *,
    device_id: str,
    approval_id: str,
    digest: str,
    decision: Decision,
    selection: list[str] | None = None,
    lifetime_s: int = 120,
) -> str:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "approval_id": approval_id,
        "digest": digest,
        "decision": decision,
        "iat": now,
        "exp": now + lifetime_s,
        "jti": uuid.uuid4().hex,
    }
    if selection is not None:
        claims["selection"] = selection
    return sign(claims, key, headers={"kid": device_id, "typ": DECISION_TYP})


def decision_device_id(token: str) -> str:
    """The `kid` (device id) a decision claims to be signed by, before verification."""
    try:
        kid = unverified_header(token).get("kid")
    except InvalidToken as exc:
        raise DecisionRejected("malformed", str(exc)) from None
    if not isinstance(kid, str) or not kid:
        raise DecisionRejected("malformed", "the decision names no device key (kid)")
    return kid


def verify_decision(
    token: str, device_key: ec.EllipticCurvePublicKey, *, approval_id: str, digest: str
) -> DecisionClaims:
    try:
        raw = verify(token, device_key, require=("exp", "iat", "jti"), typ=DECISION_TYP)
    except InvalidToken as exc:
        raise DecisionRejected("bad-signature", f"the decision does not verify: {exc}") from None
    try:
        claims = DecisionClaims.model_validate(raw)
    except ValidationError:
        raise DecisionRejected("malformed", "the decision's claims are malformed") from None
    if claims.approval_id != approval_id:
        raise DecisionRejected("wrong-approval", "the decision is for another approval")
    if claims.digest != digest:
        raise DecisionRejected("digest-mismatch", "the decision is over a different request")
    return claims

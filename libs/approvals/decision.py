"""The citizen's decision: a compact JWS signed by the device key over the prompt's digest.

The app signs with `sign_decision`; auth verifies with `verify_decision`
before it records anything, and the requesting service verifies the same JWS
again from `approval.decided` (it carries the device's public key), so no
service has to take auth's word alone.

A decision is judged by when the citizen made it, not when it is processed:
auth records the instant it received the decision (`decided_at`, auth's own
clock, never a time the phone claims) and the requesting service judges the
JWS's lifetime and the prompt's expiry at that instant
(`verify_recorded_decision`), so a decision delayed in the broker or behind a
restarting service still completes its request, and one made after the
prompt expired is still refused.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from libs.tokens import InvalidToken, sign, unverified_header, verify
from libs.tokens.jws import LEEWAY_S

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
    # User verification for this decision, as the app claims it: "pin" when it asked for the PIN that unlocked the
    # key. auth believes it only from a device registered as PIN-protected (services/auth/devices/protection.py);
    # "passkey" (the web app) is believed only from the passkey assertion auth verifies, never from this claim.
    uv: Literal["pin", "passkey", "none"] | None = None
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
    uv: Literal["pin", "passkey", "none"] | None = None,
    lifetime_s: int = 120,
    now: datetime | None = None,
) -> str:
    """The decision as the phone signs it, at `now` (default: the wall clock)."""
    now = int((now or datetime.now(UTC)).timestamp())
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
    if uv is not None:
        claims["uv"] = uv
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
    token: str, device_key: ec.EllipticCurvePublicKey, *, approval_id: str, digest: str, at: datetime | None = None
) -> DecisionClaims:
    """The decision's claims, signed by `device_key` over `digest`; its lifetime judged at `at` (default: now)."""
    try:
        raw = verify(token, device_key, require=("exp", "iat", "jti"), typ=DECISION_TYP, now=at)
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


def decision_time(recorded: Any, *, published_at: datetime, now: datetime) -> datetime:
    """When the citizen decided, as auth recorded it (`decided_at` of approval.decided), if it is sane.

    auth records its own receive time and publishes it in the same transaction, so the event's `time`
    (`published_at`) is never earlier; nor can the decision be in the future of the service processing it
    (`now`), beyond LEEWAY_S for the clocks of two machines.
    """
    try:
        at = datetime.fromisoformat(recorded) if isinstance(recorded, str) else None
    except ValueError:
        at = None
    if at is None or at.utcoffset() is None:
        raise DecisionRejected("malformed", "the decision carries no recorded time (decided_at)")
    if at > published_at:
        raise DecisionRejected("bad-time", "the decision was recorded after the event that carries it")
    if at > now + timedelta(seconds=LEEWAY_S):
        raise DecisionRejected("bad-time", "the decision was recorded in the future")
    return at


def verify_recorded_decision(
    token: str,
    device_key: ec.EllipticCurvePublicKey,
    *,
    approval_id: str,
    digest: str,
    expires_at: datetime,
    decided_at: Any,
    published_at: datetime,
    now: datetime,
) -> tuple[DecisionClaims, datetime]:
    """A decision auth recorded and published (approval.decided), judged at the time the citizen made it.

    The claims and that time (`decision_time`), when the decision was recorded before the prompt's `expires_at`
    and its JWS was valid at that time (`verify_decision` at it) — however long ago that was (`now`).
    """
    at = decision_time(decided_at, published_at=published_at, now=now)
    if at >= expires_at:
        raise DecisionRejected("expired", "the decision was made after the prompt had expired")
    return verify_decision(token, device_key, approval_id=approval_id, digest=digest, at=at), at

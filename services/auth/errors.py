"""auth's refusals: declarative subclasses of the shared hierarchy (libs/errors.py), rendered by the service kit.

Each class is one answer a caller can act on: its status, its slug (the
problem type) and its title. The domain raises them; no handler catches one.
"""

from __future__ import annotations

from libs.callers.authorization import challenge
from libs import errors as shared
from libs.errors import BadRequest, Conflict, Forbidden, Gone, NotFound, TooManyRequests, Unauthorized, Unprocessable


# --- enrolment ---------------------------------------------------------------


class SelfieRefused(Unprocessable):
    """The selfie cannot be assessed at all (identity/proofing.py's SelfieRejected); `errors` says why, per field."""

    slug, title = "selfie-rejected", "Selfie rejected"


class ProofingFailed(Unprocessable):
    slug, title = "proofing-failed", "Proofing failed"


class DuplicateEnrolment(Conflict):
    slug, title = "duplicate-enrolment", "Duplicate enrolment"


class NotEnrolled(NotFound):
    """A kiosk replacement or upgrade for an identity card no account was enrolled with."""

    slug, title = "not-enrolled", "Not enrolled"


class SandboxOnly(Forbidden):
    """Self-service recovery outside the sandbox: in production a lost phone is replaced at a kiosk."""

    slug, title = "sandbox-only", "Only in the sandbox"


class MayNotEnrol(Forbidden):
    """A client other than a kiosk with scope `enrol` tried to enrol a citizen."""

    slug = "insufficient-scope"


# --- accounts ----------------------------------------------------------------


class AccountInactive(Forbidden):
    slug, title = "account-inactive", "Account inactive"


class TransitionRefused(Conflict):
    """An account state change its life cycle does not allow (or the account changed meanwhile)."""

    slug, title = "transition-refused", "Transition refused"


# --- activation codes and binding a device -----------------------------------


class ActivationRefused(shared.Refused):
    """The activation code cannot be used any more; `reason` (the slug) is used, locked or expired."""

    @property
    def reason(self) -> str:
        return self.slug


class ActivationCodeUsed(ActivationRefused, BadRequest):
    slug, title = "used", "Used"


class ActivationCodeExpired(ActivationRefused, BadRequest):
    slug, title = "expired", "Expired"


class ActivationLocked(ActivationRefused, Forbidden):
    slug, title = "locked", "Locked"


class InvalidActivation(BadRequest):
    """Wrong account id or code; `attempts_left` tells how many tries the code still has, when it is known."""

    slug, title = "invalid-activation", "Invalid activation"


class InvalidDeviceKey(BadRequest):
    slug, title = "invalid-key", "Invalid key"


class InvalidProof(BadRequest):
    slug, title = "invalid-proof", "Invalid proof"


class InvalidNonce(BadRequest):
    slug, title = "invalid-nonce", "Invalid nonce"


# --- device tokens -----------------------------------------------------------


class InvalidAssertion(Unauthorized):
    slug, title = "invalid-assertion", "Invalid assertion"


class ReplayedAssertion(Unauthorized):
    slug, title = "replayed-assertion", "Replayed assertion"


class DeviceInactive(Unauthorized):
    slug, title = "device-inactive", "Device inactive"


class InvalidDeviceToken(Unauthorized):
    slug, title = "invalid-token", "Invalid token"


def with_device_challenge(refusal: Unauthorized) -> Unauthorized:
    """A device token refused at a device endpoint answers with its RFC 6750 challenge, the slug as description."""
    refusal.headers["WWW-Authenticate"] = challenge("Bearer", error="invalid_token", description=refusal.slug)
    return refusal


class NoSuchDevice(NotFound):
    pass


class InvalidPasskey(BadRequest):
    """A passkey registration at binding that py_webauthn does not verify (challenge, origin, RP, user verification,
    attestation): nothing is bound."""

    slug, title = "invalid-passkey", "Invalid passkey"


class PasskeyAlreadyRegistered(Conflict):
    """A passkey registration whose credential id a device (of any account, active or not) or a waiting pairing
    already has (WebAuthn §7.1: the ceremony fails): nothing is bound."""

    slug, title = "passkey-already-registered", "Passkey already registered"


class UserVerificationRequired(Forbidden):
    """An approval by a passkey device without a passkey assertion that verifies (missing, another credential, the
    UV flag off, another challenge or origin, a bad signature: the detail says which); nothing changes."""

    slug, title = "user-verification-required", "User verification required"


class ClonedAuthenticator(Forbidden):
    """The passkey's sign count did not grow: the authenticator may have been cloned; nothing changes."""

    slug, title = "cloned-authenticator", "Cloned authenticator"


# --- adding a device from an existing one (devices/pairing.py) ----------------


class InvalidPairingCode(BadRequest):
    """The code names no pairing waiting for a phone (unknown, expired or already used: one answer for all three);
    `attempts_left` tells how many more wrong codes the account may enter in the current window."""

    slug, title = "invalid-pairing-code", "Invalid pairing code"


class TooManyPairingCodes(TooManyRequests):
    """The account entered too many wrong pairing codes lately; `Retry-After` says when the window ends."""

    slug, title = "too-many-pairing-codes", "Too many pairing codes"


class NoSuchPairing(NotFound):
    slug, title = "no-such-pairing", "No such pairing"


class PairingUnusable(Conflict):
    """The pairing an approval names can no longer bind a device (expired, denied or bound already)."""

    slug, title = "pairing-unusable", "Pairing unusable"


# --- approvals ---------------------------------------------------------------


class NoSuchApproval(NotFound):
    pass


class ApprovalExpired(Gone):
    slug, title = "expired", "Expired"


class ApprovalUnreadable(Gone):
    """Its key left the KEK ring: the prompt cannot be shown, so it cannot be decided either."""

    slug, title = "unreadable", "Unreadable"


class AlreadyDecided(Conflict):
    slug, title = "already-decided", "Already decided"


class MalformedDecision(BadRequest):
    slug, title = "malformed", "Malformed"


class BadSignature(Forbidden):
    slug, title = "bad-signature", "Bad signature"


class WrongApproval(Forbidden):
    slug, title = "wrong-approval", "Wrong approval"


class DigestMismatch(Forbidden):
    slug, title = "digest-mismatch", "Digest mismatch"


class WrongDevice(Forbidden):
    slug, title = "wrong-device", "Wrong device"


# libs/approvals' DecisionRejected reasons (and auth's own wrong-device), each as its refusal.
DECISION_REFUSALS = {cls.slug: cls for cls in (MalformedDecision, BadSignature, WrongApproval, DigestMismatch, WrongDevice)}


# --- the client registry -----------------------------------------------------


class NoSuchClient(NotFound):
    pass


class ClientConflict(Conflict):
    """An update that contradicts the registration (its kind, method, id or current secret)."""


class OperatorOnlyChange(Forbidden):
    """A self-service update tried to change operator-only metadata; `fields` names them."""

    slug, title = "operator-only-metadata", "Operator-only metadata"

    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"only an operator can change {', '.join(fields)}", fields=fields)


class InvalidRegistrationToken(Unauthorized):
    """Not this client's registration access token (nor the admin token), or one rotated meanwhile (RFC 7592 §1)."""

    def __init__(self, detail: str = "this client's registration access token (or the admin token) is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": challenge("Bearer", error="invalid_token")})


class SandboxLimits(Forbidden):
    """Sandbox registrations create no kiosks and claim no shared sector."""

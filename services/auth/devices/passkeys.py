"""Passkeys (WebAuthn) of the citizen's web app: registered with the device, asserted for each approval.

The web app keeps its device key in the browser (WebCrypto, non-extractable) and verifies the citizen with a passkey
(`key_protection.user_verification: "passkey"`). Both checks are py_webauthn's (`webauthn`), never by hand:

- **At binding** (`POST /v1/devices`, `POST /v1/devices/pairings`) the request carries the passkey's registration
  response (`passkey`), made over the same single-use nonce as the proof of possession (its UTF-8 bytes are the
  WebAuthn challenge): `verify_registration_response` with the app's RP ID and origin (web_app.py), user
  verification required, attestation "none" accepted (nothing more is claimed from it: no `hwk`). The device keeps
  the credential id, its COSE public key, the sign count and the AAGUID.
- **At each approval** (`POST /v1/approvals/{id}/decision` with `decision: approve`) the request carries an
  assertion whose challenge is the prompt's digest (base64url-decoded): `verify_authentication_response` with the
  device's credential, user verification required. A sign count that does not grow (when either is non-zero) is a
  cloned authenticator. The new count is stored in the decision's transaction. A denial needs no assertion.
- **At each device token** (`POST /v1/devices/token`: the web app is unlocked with the passkey) the request carries
  an assertion whose challenge is the SHA-256 of the device-signed token assertion (its compact JWS, ASCII), so
  each passkey assertion unlocks one single-use token request. The same check (`user_verified`) and the same count.

WebAuthn's JSON members are camelCase (`rawId`, `clientDataJSON`): the shapes `PublicKeyCredential.toJSON()` gives and
`webauthn.helpers.parse_*_credential_json` reads; members this model does not know are ignored (the standard adds
some), those it knows are checked.

py_webauthn and cbor2 (with pyOpenSSL, pyasn1 and pyasn1-modules, which py_webauthn brings: ~4.5 MB) are imported by
the first passkey check, not when auth starts (docs/operations.md, idle RSS; tests/unit/test_lean_start.py).
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from libs import base64url

from ..collections import DEVICE_PAIRINGS, DEVICES
from ..errors import ClonedAuthenticator, InvalidPasskey, PasskeyAlreadyRegistered, UserVerificationRequired

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession

    from ..context import Auth

PASSKEY_REFUSALS = Counter(
    "harbour_passkey_refusals_total",
    "Approvals and device tokens (the web app's unlocking) from passkey devices refused: no assertion that verifies "
    "(user-verification-required) or a sign count that did not grow (cloned-authenticator).",
    ["reason"],
)

B64URL = r"^[A-Za-z0-9_-]+={0,2}$"


def _b64(max_length: int, description: str = "") -> Any:
    return Field(min_length=1, max_length=max_length, pattern=B64URL, description=description)


class _WebAuthnJSON(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AttestationResponse(_WebAuthnJSON):
    clientDataJSON: str = _b64(4096, "base64url of the client data")
    attestationObject: str = _b64(16384, "base64url of the CBOR attestation object (fmt none is enough)")
    transports: list[Literal["ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"]] | None = Field(
        default=None, max_length=7)


class _Credential(_WebAuthnJSON):
    """What a registration and an assertion (`PublicKeyCredential.toJSON()`) have in common; each adds its response."""

    id: str = _b64(1400, "the credential id, base64url")
    rawId: str = _b64(1400, "the same, base64url")
    type: Literal["public-key"]
    clientExtensionResults: dict[str, Any] = Field(default_factory=dict, max_length=16)
    authenticatorAttachment: Literal["platform", "cross-platform"] | None = None


class PasskeyRegistration(_Credential):
    __doc__ = """`navigator.credentials.create()`'s answer as JSON (`PublicKeyCredential.toJSON()`)."""

    response: AttestationResponse


class AssertionResponse(_WebAuthnJSON):
    clientDataJSON: str = _b64(4096, "base64url of the client data")
    authenticatorData: str = _b64(4096, "base64url of the authenticator data")
    signature: str = _b64(1024, "base64url of the signature")
    userHandle: str | None = Field(default=None, max_length=1400, pattern=r"^[A-Za-z0-9_-]*={0,2}$")


class PasskeyAssertion(_Credential):
    __doc__ = """`navigator.credentials.get()`'s answer as JSON (`PublicKeyCredential.toJSON()`)."""

    response: AssertionResponse


def passkey_matches_protection(passkey: PasskeyRegistration | None, user_verification: str) -> None:
    """A binding request's `passkey` is there exactly when its key protection says "passkey" (a model check: 422)."""
    if user_verification == "passkey" and passkey is None:
        raise ValueError('key_protection.user_verification "passkey" needs the passkey\'s registration (`passkey`)')
    if passkey is not None and user_verification != "passkey":
        raise ValueError('a `passkey` is registered only with key_protection.user_verification "passkey"')


def _credential_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_none=True)


def verify_registration(passkey: PasskeyRegistration, *, nonce: str, rp_id: str, origin: str, now: datetime) -> dict[str, Any]:
    """The passkey registered over `nonce` (its UTF-8 bytes the challenge), user verified: what the device stores.
    Raises InvalidPasskey (nothing is stored then)."""
    from webauthn import verify_registration_response
    from webauthn.helpers.cose import COSEAlgorithmIdentifier
    from webauthn.helpers.exceptions import WebAuthnException

    _one_cbor_item(passkey.response.attestationObject)
    if _cross_origin(passkey.response.clientDataJSON):
        raise InvalidPasskey(_CROSS_ORIGIN)
    try:
        verified = verify_registration_response(
            credential=_credential_json(passkey), expected_challenge=nonce.encode(), expected_rp_id=rp_id,
            expected_origin=origin, require_user_verification=True,
            # The app asks for ES256 only (pubKeyCredParams alg -7): a key of another algorithm is not its passkey.
            supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256])
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise InvalidPasskey(f"the passkey does not verify: {exc}") from None
    if base64url.encode(verified.credential_id) != passkey.rawId.rstrip("="):
        # The app keeps rawId to ask for this credential at each approval: it must be the one attested.
        raise InvalidPasskey("the passkey does not verify: its id is not the credential its attestation carries")
    return {
        "credential_id": base64url.encode(verified.credential_id),
        "public_key": base64url.encode(verified.credential_public_key),
        "sign_count": verified.sign_count,
        "aaguid": verified.aaguid,
        "attestation_format": verified.fmt.value if hasattr(verified.fmt, "value") else str(verified.fmt),
        "registered_at": now,
    }


_CROSS_ORIGIN = ("the passkey does not verify: it was used from a frame of another site (crossOrigin); the app is "
                 "never framed (frame-ancestors 'none')")


def _cross_origin(client_data: str) -> bool:
    """The client data says the ceremony ran in a frame whose top-level page is another origin (WebAuthn L3 §7.1
    step 11, §7.2 step 13: the relying party decides). py_webauthn does not look; the app forbids framing, so a
    cross-origin ceremony is never the app's. Unreadable client data is left to py_webauthn to refuse."""
    try:
        return json.loads(base64url.decode(client_data.rstrip("="))).get("crossOrigin") is True
    except (ValueError, AttributeError):
        return False


def _one_cbor_item(encoded: str) -> None:
    """The attestation object is one CBOR map and nothing after it (py_webauthn's CBOR reading stops at the end of the
    first item; bytes after it would be a second, unverified message riding along)."""
    import cbor2

    try:
        data = base64url.decode(encoded.rstrip("="))
        stream = io.BytesIO(data)
        cbor2.CBORDecoder(stream).decode()
    except (ValueError, EOFError, cbor2.CBORDecodeError) as exc:
        raise InvalidPasskey(f"the passkey does not verify: its attestation object is not CBOR ({type(exc).__name__})") from None
    if stream.tell() != len(data):
        raise InvalidPasskey("the passkey does not verify: bytes follow its attestation object")


async def refuse_registered(db: Any, credential_id: str) -> None:
    """A credential id auth has seen before - on a device of any account (active or not) or in a pairing - is not
    registered again (WebAuthn §7.1: the ceremony fails). A genuine authenticator makes a new credential for each
    registration; the same id twice is a replay or a copy. (A concurrent pair is stopped by the devices' unique
    index: registry.new_device.)"""
    if await db[DEVICES].find_one({"passkey.credential_id": credential_id}, {"_id": 1}) is not None or \
            await db[DEVICE_PAIRINGS].find_one({"passkey.credential_id": credential_id}, {"_id": 1}) is not None:
        raise PasskeyAlreadyRegistered("this passkey is already registered: make a new one")


def verify_assertion(assertion: PasskeyAssertion | None, stored: dict[str, Any], *, digest: str, rp_id: str,
                     origin: str, needed: str = "the decision needs a passkey assertion (user verification) over the "
                                                "prompt's digest") -> int:
    """The citizen verified by the device's passkey over `digest` (the challenge, base64url: a prompt's digest, or a
    device token assertion's hash): the new sign count.

    Missing (`needed` says what was expected), another credential, the UV flag off, another challenge or origin, a bad
    signature: UserVerificationRequired (one slug, the detail says which); a sign count that does not grow:
    ClonedAuthenticator."""
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import WebAuthnException

    if assertion is None:
        raise UserVerificationRequired(f"this device is used with its passkey: {needed}")
    if base64url.encode(_decoded(assertion.rawId)) != stored["credential_id"]:
        raise UserVerificationRequired("the passkey assertion is by another credential than this device's")
    if _cross_origin(assertion.response.clientDataJSON):
        raise UserVerificationRequired(_CROSS_ORIGIN)
    try:
        verified = verify_authentication_response(
            credential=_credential_json(assertion), expected_challenge=base64url.decode(digest), expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=base64url.decode(stored["public_key"]),
            # The count is judged below, after the signature: a forged assertion is never "cloned".
            credential_current_sign_count=0, require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise UserVerificationRequired(f"the passkey assertion does not verify: {exc}") from None
    current, new = int(stored.get("sign_count", 0)), verified.new_sign_count
    if (current or new) and new <= current:
        raise ClonedAuthenticator(f"the passkey's sign count did not grow ({new} after {current}): "
                                  "the authenticator may have been cloned")
    return new


def token_challenge(token_assertion: str) -> str:
    """The WebAuthn challenge that unlocks a device token: SHA-256 of the device-signed assertion (compact JWS, ASCII),
    base64url. Each passkey assertion is then good for that one single-use token request."""
    return base64url.encode(hashlib.sha256(token_assertion.encode("ascii", "replace")).digest())


async def user_verified(auth: "Auth", device_id: str, passkey: PasskeyAssertion | None, digest: str, *,
                        session: "AsyncClientSession | None" = None, needed: str | None = None) -> int:
    """Verify the passkey assertion over `digest` against the device's credential and store its new sign count
    (conditionally on the old one, in the caller's transaction if any: a concurrent use of the same count loses,
    cloned). Refusals are counted (PASSKEY_REFUSALS) and raised; nothing is stored then."""
    try:
        stored = await auth.db[DEVICES].find_one({"_id": device_id}, {"passkey": 1}, session=session)
        credential = (stored or {}).get("passkey")
        if not credential:
            raise UserVerificationRequired("this device has no passkey registered to verify the citizen with")
        sign_count = verify_assertion(passkey, credential, digest=digest, rp_id=auth.passkey_rp_id,
                                      origin=auth.web_app_origin, **({"needed": needed} if needed else {}))
        counted = await auth.db[DEVICES].update_one(
            {"_id": device_id, "passkey.credential_id": credential["credential_id"],
             "passkey.sign_count": credential.get("sign_count", 0)},
            {"$set": {"passkey.sign_count": sign_count, "passkey.used_at": auth.clock.now()}}, session=session)
        if counted.matched_count != 1:  # (matched: a count that stays 0 rewrites the same value)
            raise ClonedAuthenticator("the passkey's sign count changed meanwhile: the authenticator may have been cloned")
    except (UserVerificationRequired, ClonedAuthenticator) as refusal:
        PASSKEY_REFUSALS.labels(refusal.slug).inc()  # a clone, or someone without the citizen's fingerprint, trying
        raise
    return sign_count


def _decoded(value: str) -> bytes:
    try:
        return base64url.decode(value.rstrip("="))
    except ValueError:
        raise UserVerificationRequired("the passkey assertion's credential id is not base64url") from None

"""Binding a citizen's first device: a proof of possession over a single-use nonce, then the activation code.

A device is a P-256 key pair generated on the phone; auth keeps the public
key only. Possession is proved by signing a server nonce with the new key;
the account id and the one-time activation code from the kiosk slip say
whose device it becomes.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events.topics import IDENTITY
from libs.tokens import InvalidKey, InvalidToken, load_public_jwk, thumbprint, verify

from ..collections import ACCOUNTS, DEVICE_NONCES
from ..errors import (
    AccountInactive,
    ActivationCodeUsed,
    ActivationLocked,
    InvalidActivation,
    InvalidDeviceKey,
    InvalidNonce,
    InvalidProof,
)
from ..identity.accounts import change_state
from ..identity.activation import code_hash, code_matches, lock, refuse_unusable, take_attempt
from .passkeys import PasskeyRegistration, passkey_matches_protection, refuse_registered, verify_registration
from .protection import KeyProtection
from .registry import new_device

if TYPE_CHECKING:
    from ..context import Auth
    from .pairing import PairingRequest


def passkey_audit(passkey: dict[str, Any] | None) -> dict[str, Any]:
    """What the audit record says of a registered passkey: its credential id and AAGUID (no key, no personal data)."""
    if not passkey:
        return {}
    return {"passkey_credential_id": passkey["passkey"]["credential_id"], "passkey_aaguid": passkey["passkey"]["aaguid"]}


class NewDeviceKey(BaseModel):
    """A new device's key as binding (`POST /v1/devices`) and pairing (`POST /v1/devices/pairings`) both take it: the
    public key, the name, the proof of possession and what protects the key, with its passkey when that says so."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    public_key: dict[str, str] = Field(description="the new device's P-256 public key as a JWK")
    device_name: str = Field(default="phone", min_length=1, max_length=60)
    proof: str = Field(min_length=10, max_length=4096, description="compact JWS over {nonce, aud} signed by the new key")
    key_protection: KeyProtection = Field(default_factory=KeyProtection,
                                          description="what protects the key (devices/protection.py); default software, no PIN")
    passkey: PasskeyRegistration | None = Field(
        default=None, description="with user_verification passkey (and only then): the passkey's registration response "
                                  "(PublicKeyCredential.toJSON()), its challenge the UTF-8 bytes of the proof's nonce")

    @model_validator(mode="after")
    def _passkey_declared(self) -> "NewDeviceKey":
        passkey_matches_protection(self.passkey, self.key_protection.user_verification)
        return self


class ActivationRequest(NewDeviceKey):
    account_id: str = Field(min_length=1, max_length=100)
    activation_code: str = Field(min_length=10, max_length=20)


async def issue_nonce(auth: "Auth", ttl_s: int) -> tuple[str, datetime]:
    nonce = secrets.token_urlsafe(24)
    expires_at = auth.clock.now() + timedelta(seconds=ttl_s)
    await auth.db[DEVICE_NONCES].insert_one({"_id": nonce, "expires_at": expires_at})
    return nonce, expires_at


async def verify_passkey(auth: "Auth", request: "ActivationRequest | PairingRequest", nonce: str) -> dict[str, Any]:
    """The device's fields for its passkey (none without one), verified over the proof's nonce and not registered
    before; before anything is written, so a refused passkey binds nothing."""
    if request.passkey is None:
        return {}
    passkey = verify_registration(request.passkey, nonce=nonce, rp_id=auth.passkey_rp_id,
                                  origin=auth.web_app_origin, now=auth.clock.now())
    await refuse_registered(auth.db, passkey["credential_id"])
    return {"passkey": passkey}


def verify_possession(request: ActivationRequest, audience: str) -> tuple[dict[str, str], str]:
    """The proof verifies with the key being registered; return (public JWK, nonce)."""
    try:
        key = load_public_jwk(request.public_key)
    except InvalidKey as exc:
        raise InvalidDeviceKey(str(exc)) from None
    try:
        claims = verify(request.proof, key, audience=audience, require=("iat", "exp", "nonce"))
    except InvalidToken as exc:
        raise InvalidProof(f"the proof of possession does not verify: {exc}") from None
    jwk = {k: request.public_key[k] for k in ("kty", "crv", "x", "y")}
    return jwk, str(claims["nonce"])


async def consume_nonce(auth: "Auth", nonce: str) -> None:
    found = await auth.db[DEVICE_NONCES].find_one_and_delete({"_id": nonce, "expires_at": {"$gt": auth.clock.now()}})
    if found is None:
        raise InvalidNonce("the nonce is unknown, used or expired: fetch a new one")


async def check_activation_code(auth: "Auth", request: ActivationRequest) -> None:
    """Raise unless the code opens the account; a wrong code uses up an attempt (and may lock)."""
    accounts = auth.db[ACCOUNTS]
    hash_key, max_attempts = auth.settings.hash_key, auth.settings.activation_max_attempts
    account = await accounts.find_one({"_id": request.account_id})
    if account is None:
        raise InvalidActivation("the account id or activation code is wrong")
    if account["state"] in ("suspended", "revoked", "closed"):
        raise AccountInactive(f"the account is {account['state']}")
    now = auth.clock.now()
    refuse_unusable(account.get("activation"), now=now, max_attempts=max_attempts)
    # One attempt is taken atomically before the code is compared: a burst of guesses gets at most max_attempts.
    activation = await take_attempt(accounts, request.account_id, now=now, max_attempts=max_attempts)
    if activation is None:  # used, locked or expired meanwhile: say which
        refuse_unusable((await accounts.find_one({"_id": request.account_id}) or {}).get("activation"),
                        now=now, max_attempts=max_attempts)
        raise ActivationLocked("too many wrong codes: ask for a new activation code")
    if code_matches(activation, request.activation_code, hash_key):
        return
    attempts_left = max_attempts - activation["attempts"]
    if attempts_left <= 0:
        await lock(accounts, request.account_id)
        raise ActivationLocked("too many wrong codes: ask for a new activation code")
    raise InvalidActivation("the account id or activation code is wrong", attempts_left=attempts_left)


async def bind_device(auth: "Auth", session: AsyncClientSession, request: ActivationRequest, jwk: dict[str, str],
                      passkey: dict[str, Any] | None = None) -> str:
    """Inside a transaction: use up the code, store the device, activate the account."""
    db, now = auth.db, auth.clock.now()
    # The very code that was checked: a kiosk replacement committed meanwhile put another code on the account.
    used = await db[ACCOUNTS].update_one(
        {"_id": request.account_id, "activation.status": "open",
         "activation.code_hash": code_hash(auth.settings.hash_key, request.activation_code)},
        {"$set": {"activation.status": "used", "activation.used_at": now}},
        session=session,
    )
    if used.modified_count != 1:
        raise ActivationCodeUsed("this activation code has already been used")
    device_id = f"dev-{uuid.uuid4().hex}"
    account = await db[ACCOUNTS].find_one({"_id": request.account_id}, session=session)
    await new_device(auth, session, account, device_id=device_id, name=request.device_name, jwk=jwk, now=now,
                     **request.key_protection.on_device(), **(passkey or {}))
    if account["state"] == "pending":
        await change_state(auth, session, request.account_id, "active", reason="first device activated")
    # The citizen's security alert (notify): an event of its own, so that notify need not read every audit record.
    await auth.publish(session, IDENTITY, "identity.device_activated", request.account_id, {
        "account_id": request.account_id, "device_id": device_id, "how": "activation code"})
    await auth.audit(session, subject=request.account_id, action="device.activate", actor=device_id, device_id=device_id,
                     **request.key_protection.on_device(), **passkey_audit(passkey))
    return device_id


async def activate_device(auth: "Auth", request: ActivationRequest) -> dict[str, Any]:
    """Bind a first device: proof of possession, single-use nonce, activation code, then one transaction."""
    jwk, nonce = verify_possession(request, auth.devices_audience)
    passkey = await verify_passkey(auth, request, nonce)  # the same nonce, single use for both
    await consume_nonce(auth, nonce)
    await check_activation_code(auth, request)
    device_id = await auth.transaction(lambda session: bind_device(auth, session, request, jwk, passkey))
    return {"device_id": device_id, "account_id": request.account_id, "key_thumbprint": thumbprint(jwk)}

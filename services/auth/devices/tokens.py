"""Device tokens: a device-signed assertion exchanged for a short access token, and checking that token.

Every token needs a fresh single-use assertion signed by the device key. A
device token is a short ES256 JWT (RFC 9068 `at+jwt`) whose `cnf.jkt` names
the device key; it is honoured only while the device and its account are
active, so revoking a device stops it at once. The device's document carries
its account's state and assurance (kept in step by accounts.change_state in
the same transaction), so checking a token is one read by `_id`; a device
stored before it carried them has its account read as well.

A device registered with a passkey (the web app: `user_verification: "passkey"`) is unlocked with it: its token
request carries, beside the device-signed assertion, a passkey assertion (user verification) whose challenge is the
SHA-256 of that assertion (passkeys.token_challenge). It is checked after everything else and before the assertion's
`jti` is spent, so a failed fingerprint costs the app nothing but a new try. The token says what unlocked it in `amr`
(RFC 8176, as protection.authentication_methods: ["swk", "user", "mfa"] after a passkey, else ["swk"]).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from libs.tokens import ACCESS_TOKEN_TYP, DEVICE_AUDIENCE, InvalidToken, load_public_jwk, unverified_header, verify
from libs.tokens.single_use import first_use, used_before

from ..collections import ACCOUNTS, DEVICES, USED_ASSERTIONS
from .passkeys import PasskeyAssertion, token_challenge, user_verified
from .protection import PASSKEY, authentication_methods, registered
from ..errors import (
    AccountInactive,
    DeviceInactive,
    InvalidAssertion,
    InvalidDeviceToken,
    ReplayedAssertion,
    with_device_challenge,
)

if TYPE_CHECKING:
    from ..context import Auth

MAX_ASSERTION_LIFETIME_S = 300


@dataclass(frozen=True)
class DeviceContext:
    device_id: str
    account_id: str
    public_jwk: dict[str, str]
    # The account's assurance (basic/plus) when known from the device's document, else None.
    assurance: str | None = None
    # What protects the device's key, as registered (protection.py): "software"; "pin" or "none".
    key_storage: str = "software"
    user_verification: str = "none"


async def _account_of(db, device: dict) -> dict | None:
    """The account fields a device check needs: from the device's own document, or (older devices) the account's."""
    if "account_state" in device:
        return {"_id": device["account_id"], "state": device["account_state"], "assurance": device.get("account_assurance")}
    return await db[ACCOUNTS].find_one({"_id": device["account_id"]}, {"state": 1, "assurance": 1})


async def issue_device_token(auth: "Auth", assertion: str, *, audience: str, ttl_s: int,
                             passkey: PasskeyAssertion | None = None) -> tuple[str, int]:
    """Exchange a device-signed assertion (single use, ≤ 5 min) for a device access token; a passkey device's needs
    `passkey`, an assertion over the token assertion's hash (UserVerificationRequired / ClonedAuthenticator)."""
    db = auth.db
    try:
        device_id = unverified_header(assertion).get("kid")
    except InvalidToken as exc:
        raise InvalidAssertion(str(exc)) from None
    device = await db[DEVICES].find_one({"_id": device_id}) if isinstance(device_id, str) else None
    if device is None or device["status"] != "active":
        raise DeviceInactive("the device is unknown or revoked")
    try:
        claims = verify(assertion, load_public_jwk(device["public_jwk"]), audience=audience, require=("iat", "exp", "jti"))
    except InvalidToken as exc:
        raise InvalidAssertion(str(exc)) from None
    if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME_S:
        raise InvalidAssertion("the assertion lives too long (5 minutes at most)")
    account = await _account_of(db, device)
    if account is None or account["state"] != "active":
        raise AccountInactive("the account is not active")
    key_storage, user_verification = registered(device)
    unlocked = user_verification == PASSKEY
    if unlocked:
        if await used_before(db[USED_ASSERTIONS], device_id, claims):  # a replay is a replay, not a clone
            raise ReplayedAssertion("this assertion was already used")
        # Before the jti is spent: a refusal (a failed fingerprint) leaves the assertion good for another try.
        await user_verified(auth, device_id, passkey, token_challenge(assertion),
                            needed="its device token needs a passkey assertion (user verification) over the SHA-256 "
                                   "of the token assertion")
    if not await first_use(db[USED_ASSERTIONS], device_id, claims):
        raise ReplayedAssertion("this assertion was already used")
    # JWT times are the wall clock's: PyJWT checks them against it wherever the token goes.
    now = int(time.time())
    token = await auth.signer.sign(
        {
            "sub": device["account_id"],
            "aud": DEVICE_AUDIENCE,
            "iat": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            "scope": "device",
            "device_id": device_id,
            "cnf": {"jkt": device["jkt"]},
            "amr": authentication_methods(key_storage, user_verification, None, passkey_verified=unlocked),
        },
        typ=ACCESS_TOKEN_TYP,
    )
    return token, ttl_s


async def authenticate_device(auth: "Auth", token: str, *,
                              sender: Callable[[dict[str, Any]], None] | None = None) -> DeviceContext:
    """The device behind a device token, checked afresh on every request.

    `sender`: the proof-of-possession check of the request (libs/callers.check_sender: the DPoP proof signed by the
    device key the token's `cnf.jkt` names), called with the verified claims before the device is read."""
    db = auth.db
    try:
        claims = await auth.signer.verify(token, audience=DEVICE_AUDIENCE, typ=ACCESS_TOKEN_TYP)
    except InvalidToken as exc:
        raise with_device_challenge(InvalidDeviceToken(str(exc))) from None
    if sender is not None:
        sender(claims)
    device = await db[DEVICES].find_one({"_id": claims.get("device_id")})
    if device is None or device["status"] != "active" or device["account_id"] != claims["sub"]:
        raise with_device_challenge(DeviceInactive("the device is unknown or revoked"))
    if claims.get("cnf", {}).get("jkt") != device["jkt"]:
        raise with_device_challenge(InvalidDeviceToken("the token is not bound to this device's key"))
    account = await _account_of(db, device)
    if account is None or account["state"] != "active":
        raise AccountInactive("the account is not active")
    key_storage, user_verification = registered(device)
    return DeviceContext(device_id=device["_id"], account_id=device["account_id"], public_jwk=device["public_jwk"],
                         assurance=account.get("assurance"), key_storage=key_storage, user_verification=user_verification)

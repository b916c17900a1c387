"""Binding a citizen's first device: a proof of possession over a single-use nonce, then the activation code.

A device is a P-256 key pair generated on the phone; auth keeps the public
key only. Possession is proved by signing a server nonce with the new key;
the account id and the one-time activation code from the kiosk slip say
whose device it becomes.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.events import Outbox
from libs.events.audit import record_audit
from libs.tokens import InvalidKey, InvalidToken, load_public_jwk, thumbprint, verify

from ..collections import ACCOUNTS, DEVICE_NONCES, DEVICES
from ..errors import Refused
from ..identity.accounts import change_state
from ..identity.activation import ActivationRefused, code_matches, lock, refuse_unusable, take_attempt

if TYPE_CHECKING:
    from ..context import Auth


class ActivationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account_id: str = Field(min_length=1, max_length=100)
    activation_code: str = Field(min_length=10, max_length=20)
    public_key: dict[str, str] = Field(description="the device's P-256 public key as a JWK")
    device_name: str = Field(default="phone", min_length=1, max_length=60)
    proof: str = Field(min_length=10, max_length=4096, description="compact JWS over {nonce, aud} signed by the new key")

async def issue_nonce(db: AsyncDatabase, ttl_s: int) -> tuple[str, datetime]:
    nonce = secrets.token_urlsafe(24)
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
    await db[DEVICE_NONCES].insert_one({"_id": nonce, "expires_at": expires_at})
    return nonce, expires_at

def verify_possession(request: ActivationRequest, audience: str) -> tuple[dict[str, str], str]:
    """The proof verifies with the key being registered; return (public JWK, nonce)."""
    try:
        key = load_public_jwk(request.public_key)
    except InvalidKey as exc:
        raise Refused("invalid-key", str(exc)) from None
    try:
        claims = verify(request.proof, key, audience=audience, require=("iat", "exp", "nonce"))
    except InvalidToken as exc:
        raise Refused("invalid-proof", f"the proof of possession does not verify: {exc}") from None
    jwk = {k: request.public_key[k] for k in ("kty", "crv", "x", "y")}
    return jwk, str(claims["nonce"])

async def consume_nonce(db: AsyncDatabase, nonce: str) -> None:
    found = await db[DEVICE_NONCES].find_one_and_delete({"_id": nonce, "expires_at": {"$gt": datetime.now(UTC)}})
    if found is None:
        raise Refused("invalid-nonce", "the nonce is unknown, used or expired: fetch a new one")

async def check_activation_code(db: AsyncDatabase, request: ActivationRequest, *, hash_key: bytes, max_attempts: int) -> None:
    """Raise unless the code opens the account; a wrong code uses up an attempt (and may lock)."""
    account = await db[ACCOUNTS].find_one({"_id": request.account_id})
    if account is None:
        raise Refused("invalid-activation", "the account id or activation code is wrong")
    if account["state"] in ("suspended", "revoked"):
        raise Refused("account-inactive", f"the account is {account['state']}", status=403)
    now = datetime.now(UTC)
    try:
        refuse_unusable(account.get("activation"), now=now, max_attempts=max_attempts)
    except ActivationRefused as exc:
        raise Refused(exc.reason, str(exc), status=403 if exc.reason == "locked" else 400) from None
    # One attempt is taken atomically before the code is compared: a burst of guesses gets at most max_attempts.
    activation = await take_attempt(db[ACCOUNTS], request.account_id, now=now, max_attempts=max_attempts)
    if activation is None:  # used, locked or expired meanwhile: say which
        try:
            refuse_unusable((await db[ACCOUNTS].find_one({"_id": request.account_id}) or {}).get("activation"),
                            now=now, max_attempts=max_attempts)
        except ActivationRefused as exc:
            raise Refused(exc.reason, str(exc), status=403 if exc.reason == "locked" else 400) from None
        raise Refused("locked", "too many wrong codes: ask for a new activation code", status=403)
    if code_matches(activation, request.activation_code, hash_key):
        return
    attempts_left = max_attempts - activation["attempts"]
    if attempts_left <= 0:
        await lock(db[ACCOUNTS], request.account_id)
        raise Refused("locked", "too many wrong codes: ask for a new activation code", status=403)
    raise Refused("invalid-activation", "the account id or activation code is wrong", attempts_left=attempts_left)

async def bind_device(
    db: AsyncDatabase, session: AsyncClientSession, request: ActivationRequest, jwk: dict[str, str]
) -> str:
    """Inside a transaction: use up the code, store the device, activate the account."""
    used = await db[ACCOUNTS].update_one(
        {"_id": request.account_id, "activation.status": "open"},
        {"$set": {"activation.status": "used", "activation.used_at": datetime.now(UTC)}},
        session=session,
    )
    if used.modified_count != 1:
        raise Refused("used", "this activation code has already been used")
    device_id = f"dev-{uuid.uuid4().hex}"
    await db[DEVICES].insert_one(
        {
            "_id": device_id,
            "account_id": request.account_id,
            "name": request.device_name,
            "public_jwk": jwk,
            "jkt": thumbprint(jwk),
            "status": "active",
            "created_at": datetime.now(UTC),
        },
        session=session,
    )
    account = await db[ACCOUNTS].find_one({"_id": request.account_id}, session=session)
    if account["state"] == "pending":
        await change_state(db, session, request.account_id, "active", reason="first device activated")
    await record_audit(
        Outbox(db), session, service="auth", subject=request.account_id, action="device.activate",
        actor=device_id, device_id=device_id,
    )
    return device_id

async def activate_device(auth: "Auth", request: ActivationRequest) -> dict[str, Any]:
    """Bind a first device: proof of possession, single-use nonce, activation code, then one transaction."""
    jwk, nonce = verify_possession(request, auth.devices_audience)
    await consume_nonce(auth.db, nonce)
    settings = auth.settings
    await check_activation_code(
        auth.db, request, hash_key=settings.hash_key, max_attempts=settings.activation_max_attempts
    )
    device_id = await auth.transaction(lambda session: bind_device(auth.db, session, request, jwk))
    return {"device_id": device_id, "account_id": request.account_id, "key_thumbprint": thumbprint(jwk)}

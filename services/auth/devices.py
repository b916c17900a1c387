"""Citizen devices: binding the first one with an activation code, device tokens, listing and revoking.

A device is a P-256 key pair generated on the phone; auth keeps the public
key only. Possession is proved by signing: a server nonce at activation, a
single-use assertion for every device token. A device token is a short ES256
JWT whose `cnf.jkt` names the device key; it is honoured only while the
device and its account are active, so revoking a device stops it at once.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs.events import Outbox
from libs.events.audit import record_audit
from libs.revocation import events as revocation_events
from libs.tokens import InvalidKey, InvalidToken, load_public_jwk, thumbprint, unverified_header, verify

from .accounts import change_state
from .activation import ActivationRefused, code_matches, lock, refuse_unusable, take_attempt
from .errors import Refused
from libs.tokens.keystore import TokenSigner
from .store import ACCOUNTS, DEVICE_NONCES, DEVICES, USED_ASSERTIONS

if TYPE_CHECKING:
    from .context import Auth

DEVICE_TOKEN_AUDIENCE = "harbour-device"
DEVICE_TOKEN_TYP = "at+jwt"  # RFC 9068
MAX_ASSERTION_LIFETIME_S = 300


class ActivationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account_id: str = Field(min_length=1, max_length=100)
    activation_code: str = Field(min_length=10, max_length=20)
    public_key: dict[str, str] = Field(description="the device's P-256 public key as a JWK")
    device_name: str = Field(default="phone", min_length=1, max_length=60)
    proof: str = Field(min_length=10, max_length=4096, description="compact JWS over {nonce, aud} signed by the new key")


@dataclass(frozen=True)
class DeviceContext:
    device_id: str
    account_id: str
    public_jwk: dict[str, str]


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


async def issue_device_token(
    db: AsyncDatabase, signer: TokenSigner, assertion: str, *, audience: str, ttl_s: int
) -> tuple[str, int]:
    """Exchange a device-signed assertion (single use, ≤ 5 min) for a device access token."""
    try:
        device_id = unverified_header(assertion).get("kid")
    except InvalidToken as exc:
        raise Refused("invalid-assertion", str(exc), status=401) from None
    device = await db[DEVICES].find_one({"_id": device_id}) if isinstance(device_id, str) else None
    if device is None or device["status"] != "active":
        raise Refused("device-inactive", "the device is unknown or revoked", status=401)
    try:
        claims = verify(assertion, load_public_jwk(device["public_jwk"]), audience=audience, require=("iat", "exp", "jti"))
    except InvalidToken as exc:
        raise Refused("invalid-assertion", str(exc), status=401) from None
    if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME_S:
        raise Refused("invalid-assertion", "the assertion lives too long (5 minutes at most)", status=401)
    account = await db[ACCOUNTS].find_one({"_id": device["account_id"]})
    if account is None or account["state"] != "active":
        raise Refused("account-inactive", "the account is not active", status=403)
    try:
        await db[USED_ASSERTIONS].insert_one(
            {"_id": f"{device_id}:{claims['jti']}", "expires_at": datetime.fromtimestamp(claims["exp"], UTC) + timedelta(minutes=1)}
        )
    except DuplicateKeyError:
        raise Refused("replayed-assertion", "this assertion was already used", status=401) from None
    now = int(datetime.now(UTC).timestamp())
    token = await signer.sign(
        {
            "sub": device["account_id"],
            "aud": DEVICE_TOKEN_AUDIENCE,
            "iat": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            "scope": "device",
            "device_id": device_id,
            "cnf": {"jkt": device["jkt"]},
        },
        typ=DEVICE_TOKEN_TYP,
    )
    return token, ttl_s


async def authenticate_device(db: AsyncDatabase, signer: TokenSigner, token: str) -> DeviceContext:
    """The device behind a device token, checked afresh on every request."""
    try:
        claims = await signer.verify(token, audience=DEVICE_TOKEN_AUDIENCE, typ=DEVICE_TOKEN_TYP)
    except InvalidToken as exc:
        raise Refused("invalid-token", str(exc), status=401) from None
    device = await db[DEVICES].find_one({"_id": claims.get("device_id")})
    if device is None or device["status"] != "active" or device["account_id"] != claims["sub"]:
        raise Refused("device-inactive", "the device is unknown or revoked", status=401)
    if claims.get("cnf", {}).get("jkt") != device["jkt"]:
        raise Refused("invalid-token", "the token is not bound to this device's key", status=401)
    account = await db[ACCOUNTS].find_one({"_id": device["account_id"]}, {"state": 1})
    if account is None or account["state"] != "active":
        raise Refused("account-inactive", "the account is not active", status=403)
    return DeviceContext(device_id=device["_id"], account_id=device["account_id"], public_jwk=device["public_jwk"])


def device_view(doc: dict) -> dict[str, Any]:
    view = {
        "device_id": doc["_id"],
        "name": doc["name"],
        "status": doc["status"],
        "key_thumbprint": doc["jkt"],
        "created_at": doc["created_at"].isoformat(),
    }
    if doc.get("revoked_at"):
        view["revoked_at"] = doc["revoked_at"].isoformat()
    return view


async def list_devices(db: AsyncDatabase, account_id: str) -> list[dict[str, Any]]:
    docs = await db[DEVICES].find({"account_id": account_id}).sort("created_at", 1).to_list()
    return [device_view(d) for d in docs]


async def revoke_device(
    db: AsyncDatabase, session: AsyncClientSession, actor: DeviceContext, device_id: str, *, device_token_ttl_s: int
) -> None:
    """Revoke one of the citizen's devices; its device tokens are refused everywhere once the event arrives (≤ 2 s)."""
    result = await db[DEVICES].update_one(
        {"_id": device_id, "account_id": actor.account_id, "status": "active"},
        {"$set": {"status": "revoked", "revoked_at": datetime.now(UTC), "revoked_by": actor.device_id}},
        session=session,
    )
    if result.matched_count != 1:
        raise Refused("not-found", "no such active device on this account", status=404)
    await record_audit(
        Outbox(db), session, service="auth", subject=actor.account_id, action="device.revoke",
        actor=actor.device_id, device_id=device_id,
    )
    # Tokens issued up to now live at most device_token_ttl_s; a minute more covers clock skew between services.
    await revocation_events.device_revoked(Outbox(db), session, device_id,
                                           expires_at=datetime.now(UTC).timestamp() + device_token_ttl_s + 60)


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

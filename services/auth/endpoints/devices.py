"""A citizen's devices over HTTP: binding the first one, adding one from another (pairing), device tokens, listing,
naming and revoking them."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from libs.held_requests import MAX_WAIT_S, WAIT_OUT_OF_RANGE, WaitQuery, wait_query
from libs.service import ValidationFailed, validate
from libs.service.endpoints import NO_STORE, Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS

from ..callers import AUTH, DEVICE_REFUSALS, current_device
from ..devices import binding, pairing, registry, tokens
from ..devices.binding import ActivationRequest
from ..devices.pairing import PairingRequest
from ..devices.passkeys import PasskeyAssertion
from ..devices.tokens import DeviceContext
from ..errors import (
    AccountInactive,
    ActivationCodeExpired,
    ClonedAuthenticator,
    ActivationCodeUsed,
    ActivationLocked,
    DeviceInactive,
    InvalidActivation,
    InvalidAssertion,
    InvalidDeviceKey,
    InvalidNonce,
    InvalidPairingCode,
    InvalidPasskey,
    InvalidProof,
    PasskeyAlreadyRegistered,
    NoSuchDevice,
    NoSuchPairing,
    ReplayedAssertion,
    TooManyPairingCodes,
    UserVerificationRequired,
)
from ..views import DeviceActivated, DeviceChallenge, DeviceList, DeviceToken, DeviceView, PairingClaimed, PairingStarted, PairingView

endpoints = Endpoints(tags=("devices",))


class PairingClaim(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(min_length=8, max_length=12, description="the code the new phone shows (XXXX-XXXX)")


class DeviceRename(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=60)


class DeviceTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assertion: str = Field(min_length=10, max_length=4096, description="compact JWS signed by the device key")
    passkey: PasskeyAssertion | None = Field(
        default=None, description="a passkey device (the web app, unlocked with its passkey): the WebAuthn assertion "
                                  "(PublicKeyCredential.toJSON()) whose challenge is the SHA-256 of `assertion` (its "
                                  "ASCII bytes), with user verification")


@endpoints.post("/v1/devices/challenges", summary="A single-use nonce for a device's proof of possession",
                answers={201: DeviceChallenge})
async def create_challenge(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    nonce, expires_at = await binding.issue_nonce(auth, auth.settings.device_nonce_ttl_s)
    return web.json_response(
        {"nonce": nonce, "expires_at": expires_at.isoformat(), "audience": auth.devices_audience}, status=201
    )


@endpoints.post(
    "/v1/devices", summary="Bind a citizen's first device with the activation code", body=ActivationRequest,
    answers={201: DeviceActivated,
             400: "malformed body, invalid-key, invalid-proof, invalid-nonce, invalid-passkey, invalid-activation (with "
                  "attempts_left), used or expired",
             403: "locked after too many wrong codes, or account-inactive",
             409: "passkey-already-registered (its credential id is a device's or a pairing's already)"},
    refusals=(InvalidDeviceKey, InvalidProof, InvalidNonce, InvalidPasskey, InvalidActivation, ActivationCodeUsed,
              ActivationCodeExpired, ActivationLocked, AccountInactive, PasskeyAlreadyRegistered),
)
async def activate(request: web.Request, body: ActivationRequest) -> web.Response:
    return web.json_response(await binding.activate_device(request.app[AUTH], body), status=201)


@endpoints.post(
    "/v1/devices/token", summary="Exchange a device-signed assertion for a device token", body=DeviceTokenRequest,
    answers={200: DeviceToken, 401: "invalid-assertion, replayed-assertion or device-inactive",
             403: "account-inactive, user-verification-required (a passkey device without a passkey assertion over the "
                  "assertion's hash that verifies) or cloned-authenticator (its sign count did not grow)"},
    refusals=(InvalidAssertion, ReplayedAssertion, DeviceInactive, AccountInactive, UserVerificationRequired,
              ClonedAuthenticator),
)
async def device_token(request: web.Request, body: DeviceTokenRequest) -> web.Response:
    auth = request.app[AUTH]
    token, ttl = await tokens.issue_device_token(
        auth, body.assertion, audience=auth.device_token_audience, ttl_s=auth.settings.device_token_ttl_s,
        passkey=body.passkey)
    return web.json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": "device"}, headers=NO_STORE
    )


@endpoints.get("/v1/devices", summary="The account's devices", caller=current_device,
               answers={200: DeviceList, **DEVICE_AUTH_ERRORS}, refusals=DEVICE_REFUSALS, security=("deviceToken",))
async def list_devices(request: web.Request, caller: DeviceContext) -> web.Response:
    listed = await registry.list_devices(request.app[AUTH].db, caller.account_id)
    return web.json_response({"devices": listed, "current_device_id": caller.device_id})


@endpoints.delete("/v1/devices/{device_id}", summary="Revoke a device of the account (this one or another)", caller=current_device,
                  answers={204: None, **DEVICE_AUTH_ERRORS, 404: "no such active device on this account"},
                  refusals=(*DEVICE_REFUSALS, NoSuchDevice), security=("deviceToken",))
async def revoke(request: web.Request, caller: DeviceContext) -> None:
    auth = request.app[AUTH]
    target = request.match_info["device_id"]
    await auth.transaction(lambda session: registry.revoke_device(auth, session, caller, target))


@endpoints.patch("/v1/devices/{device_id}", summary="Name a device of the account (this one or another)", caller=current_device,
                 body=DeviceRename, answers={200: DeviceView, **DEVICE_AUTH_ERRORS, 404: "no such device on this account"},
                 refusals=(*DEVICE_REFUSALS, NoSuchDevice), security=("deviceToken",))
async def rename(request: web.Request, caller: DeviceContext, body: DeviceRename) -> web.Response:
    auth = request.app[AUTH]
    target = request.match_info["device_id"]
    return web.json_response(await auth.transaction(
        lambda session: registry.rename_device(auth, session, caller, target, body.name)))


# --- adding a device from an existing one (devices/pairing.py) ----------------


@endpoints.post(
    "/v1/devices/pairings", summary="A new phone asks to be added from a phone already bound: the code it shows",
    body=PairingRequest,
    answers={201: PairingStarted, 400: "malformed body, invalid-key, invalid-proof, invalid-nonce or invalid-passkey",
             409: "passkey-already-registered (its credential id is a device's or a pairing's already)"},
    refusals=(InvalidDeviceKey, InvalidProof, InvalidNonce, InvalidPasskey, PasskeyAlreadyRegistered),
    description="The proof of possession is activation's (a nonce from POST /v1/devices/challenges signed by the new "
                "key): the pairing is bound to that key. The code lives 5 minutes, single use (docs/api.md).",
)
async def start_pairing(request: web.Request, body: PairingRequest) -> web.Response:
    return web.json_response(await pairing.start(request.app[AUTH], body), status=201, headers=NO_STORE)


@endpoints.post(
    "/v1/devices/pairings/claim", summary="A bound phone enters the new phone's code: an add_device prompt to approve",
    caller=current_device, body=PairingClaim, security=("deviceToken",),
    answers={201: PairingClaimed, **DEVICE_AUTH_ERRORS,
             400: "malformed body, or invalid-pairing-code (wrong, expired or used; with attempts_left)",
             429: "too-many-pairing-codes: the account's wrong codes in the window are used up (Retry-After)"},
    refusals=(*DEVICE_REFUSALS, InvalidPairingCode, TooManyPairingCodes),
)
async def claim_pairing(request: web.Request, caller: DeviceContext, body: PairingClaim) -> web.Response:
    return web.json_response(await pairing.claim(request.app[AUTH], caller, body.code), status=201)


# The new phone's question after its pairing may be held until the pairing moves (?wait=; libs/held_requests.py).
HELD_ROUTES = ("/v1/devices/pairings/{pairing_id}",)
PAIRING_WAIT_QUERY = wait_query("until the pairing moves")


@endpoints.get(
    "/v1/devices/pairings/{pairing_id}", summary="The new phone asks after its pairing until it is bound",
    answers={200: PairingView, 404: "no such pairing", 422: WAIT_OUT_OF_RANGE}, refusals=(NoSuchPairing, ValidationFailed),
    query_params=PAIRING_WAIT_QUERY,
    description=f"With `wait` (seconds, at most {MAX_WAIT_S}): while the pairing still stands where it stood (waiting, "
                "or claimed), the request is held until it moves — claimed, bound, denied — or expires, then answered "
                "as without it: a few requests in a pairing's minutes instead of polling (docs/api.md).",
)
async def show_pairing(request: web.Request) -> web.Response:
    query = validate(WaitQuery, dict(request.query))
    answer = await pairing.view(request.app[AUTH], request.match_info["pairing_id"], wait_s=query.wait)
    return web.json_response(answer, headers=NO_STORE)

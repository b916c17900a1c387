"""A citizen's devices over HTTP: binding the first one, device tokens, listing and revoking them."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from libs.service.endpoints import NO_STORE, Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS

from ..callers import AUTH, DEVICE_REFUSALS, current_device
from ..devices import binding, registry, tokens
from ..devices.binding import ActivationRequest
from ..devices.tokens import DeviceContext
from ..errors import (
    AccountInactive,
    ActivationCodeExpired,
    ActivationCodeUsed,
    ActivationLocked,
    DeviceInactive,
    InvalidActivation,
    InvalidAssertion,
    InvalidDeviceKey,
    InvalidNonce,
    InvalidProof,
    NoSuchDevice,
    ReplayedAssertion,
)
from ..views import DeviceActivated, DeviceChallenge, DeviceList, DeviceToken

endpoints = Endpoints(tags=("devices",))


class DeviceTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assertion: str = Field(min_length=10, max_length=4096, description="compact JWS signed by the device key")


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
             400: "malformed body, invalid-key, invalid-proof, invalid-nonce, invalid-activation (with attempts_left), used or expired",
             403: "locked after too many wrong codes, or account-inactive"},
    refusals=(InvalidDeviceKey, InvalidProof, InvalidNonce, InvalidActivation, ActivationCodeUsed, ActivationCodeExpired,
              ActivationLocked, AccountInactive),
)
async def activate(request: web.Request, body: ActivationRequest) -> web.Response:
    return web.json_response(await binding.activate_device(request.app[AUTH], body), status=201)


@endpoints.post(
    "/v1/devices/token", summary="Exchange a device-signed assertion for a device token", body=DeviceTokenRequest,
    answers={200: DeviceToken, 401: "invalid-assertion, replayed-assertion or device-inactive", 403: "account-inactive"},
    refusals=(InvalidAssertion, ReplayedAssertion, DeviceInactive, AccountInactive),
)
async def device_token(request: web.Request, body: DeviceTokenRequest) -> web.Response:
    auth = request.app[AUTH]
    token, ttl = await tokens.issue_device_token(
        auth, body.assertion, audience=auth.device_token_audience, ttl_s=auth.settings.device_token_ttl_s
    )
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

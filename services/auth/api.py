"""auth's HTTP handlers (accounts, devices, approvals, clients): authenticate, parse, call the domain, serialise.

Refusals are raised below and rendered by the service kit; no handler catches one.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from libs.callers import TokenRequired
from libs.service import parse_body

from .approvals import decisions, queue
from .callers import AUTH, current_device, enrolling_actor, is_admin, registration_caller
from .clients.metadata import ClientMetadata, ClientUpdate
from .clients.registry import Client, find_client
from .clients.registry import delete_client as delete_client_in
from .clients.registry import register_client as register_client_in
from .clients.registry import update_client as update_client_in
from .context import Auth
from .devices import binding, registry, tokens
from .devices.binding import ActivationRequest
from .errors import NoSuchClient, SandboxLimits
from .identity import enrolment
from .identity.enrolment import EnrolmentRequest

routes = web.RouteTableDef()
NO_STORE = {"Cache-Control": "no-store"}


class DeviceTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assertion: str = Field(min_length=10, max_length=4096, description="compact JWS signed by the device key")


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: str = Field(min_length=10, max_length=8192, description="compact JWS signed by the device key")


def registration_client_uri(auth: Auth, client_id: str) -> str:
    return f"{auth.settings.issuer}/v1/clients/{client_id}"


def client_view(auth: Auth, client: Client) -> dict:
    return {**client.public_view(), "registration_client_uri": registration_client_uri(auth, client.client_id)}


# --- the client registry -----------------------------------------------------


@routes.post("/v1/clients")
async def register_client(request: web.Request) -> web.Response:
    """RFC 7591-style registration: operators with the admin token; anyone in the sandbox (no kiosks, no shared sectors)."""
    auth = request.app[AUTH]
    admin = is_admin(request, auth)
    if not admin and not auth.settings.sandbox:
        raise TokenRequired("the admin token is required")
    metadata = await parse_body(request, ClientMetadata)
    if not admin and (metadata.kind == "kiosk" or metadata.sector_identifier_uri or "enrol" in metadata.scope.split()):
        raise SandboxLimits("sandbox registrations cannot create kiosks or claim a shared sector")
    registered = await auth.transaction(
        lambda session: register_client_in(auth, session, metadata, registered_by="admin" if admin else "sandbox")
    )
    body = {**client_view(auth, registered.client), "client_id_issued_at": int(auth.clock.now().timestamp()),
            "registration_access_token": registered.registration_access_token}
    if registered.client_secret:
        body |= {"client_secret": registered.client_secret, "client_secret_expires_at": 0}
    return web.json_response(body, status=201, headers=NO_STORE)


@routes.get("/v1/clients/{client_id}")
async def read_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.1: the client's current registration (never its secret or token)."""
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    await registration_caller(request, auth, client_id)
    client = await find_client(auth.db, client_id)
    if client is None:
        raise NoSuchClient("no such client")
    return web.json_response(client_view(auth, client), headers=NO_STORE)


@routes.put("/v1/clients/{client_id}")
async def update_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.2: operators change anything but kind and method; the client itself only its own keys, contacts, logo, secret."""
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    token = await registration_caller(request, auth, client_id)
    update = await parse_body(request, ClientUpdate)
    updated = await auth.transaction(
        lambda session: update_client_in(auth, session, client_id, update, registration_token=token,
                                         updated_by="admin" if token is None else client_id)
    )
    body = client_view(auth, updated.client)
    if updated.registration_access_token:
        body["registration_access_token"] = updated.registration_access_token
    if updated.client_secret:
        body |= {"client_secret": updated.client_secret, "client_secret_expires_at": 0}
    return web.json_response(body, headers=NO_STORE)


@routes.delete("/v1/clients/{client_id}")
async def delete_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.3: the client (or an operator) removes the registration."""
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    token = await registration_caller(request, auth, client_id)
    await auth.transaction(
        lambda session: delete_client_in(auth, session, client_id, registration_token=token,
                                         deleted_by="admin" if token is None else client_id)
    )
    return web.Response(status=204)


# --- enrolment ---------------------------------------------------------------


@routes.post("/v1/enrolments")
async def create_enrolment(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    actor, assurance = await enrolling_actor(request, auth)
    body = await parse_body(request, EnrolmentRequest)
    result = await enrolment.enrol_citizen(auth, body, actor=actor, assurance=assurance)
    return web.json_response(result, status=201, headers=NO_STORE)


# --- devices -----------------------------------------------------------------


@routes.post("/v1/devices/challenges")
async def create_device_challenge(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    nonce, expires_at = await binding.issue_nonce(auth, auth.settings.device_nonce_ttl_s)
    return web.json_response(
        {"nonce": nonce, "expires_at": expires_at.isoformat(), "audience": auth.devices_audience}, status=201
    )


@routes.post("/v1/devices")
async def activate_device(request: web.Request) -> web.Response:
    body = await parse_body(request, ActivationRequest)
    return web.json_response(await binding.activate_device(request.app[AUTH], body), status=201)


@routes.post("/v1/devices/token")
async def device_token(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    body = await parse_body(request, DeviceTokenRequest)
    token, ttl = await tokens.issue_device_token(
        auth, body.assertion, audience=auth.device_token_audience, ttl_s=auth.settings.device_token_ttl_s
    )
    return web.json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": "device"}, headers=NO_STORE
    )


@routes.get("/v1/devices")
async def list_devices(request: web.Request) -> web.Response:
    device = await current_device(request)
    listed = await registry.list_devices(request.app[AUTH].db, device.account_id)
    return web.json_response({"devices": listed, "current_device_id": device.device_id})


@routes.delete("/v1/devices/{device_id}")
async def revoke_device(request: web.Request) -> web.Response:
    device = await current_device(request)
    auth = request.app[AUTH]
    target = request.match_info["device_id"]
    await auth.transaction(lambda session: registry.revoke_device(auth, session, device, target))
    return web.Response(status=204)


# --- approvals ---------------------------------------------------------------


@routes.get("/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    device = await current_device(request)
    return web.json_response({"approvals": await queue.pending_prompts(request.app[AUTH], device.account_id)})


@routes.get("/v1/approvals/{approval_id}")
async def show_approval(request: web.Request) -> web.Response:
    device = await current_device(request)
    return web.json_response(await queue.get_prompt(request.app[AUTH], device.account_id, request.match_info["approval_id"]))


@routes.post("/v1/approvals/{approval_id}/decision")
async def decide_approval(request: web.Request) -> web.Response:
    device = await current_device(request)
    auth = request.app[AUTH]
    body = await parse_body(request, DecisionRequest)
    approval_id = request.match_info["approval_id"]
    result = await auth.transaction(lambda session: decisions.decide(auth, session, device, approval_id, body.decision))
    return web.json_response(result)

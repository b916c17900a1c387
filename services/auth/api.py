"""auth's HTTP handlers: parse and authenticate, call the domain, serialise. Nothing else."""

from __future__ import annotations

import hmac
import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from libs.service import NotFound, Problem, Unauthorized, parse_body

from .approvals import decisions, queue
from .clients.metadata import ClientMetadata, ClientUpdate
from .clients.registry import (
    Client,
    OperatorOnlyChange,
    StaleRegistrationToken,
    authenticate_client,
    authenticate_registration,
    find_client,
    parse_basic,
)
from .clients.registry import delete_client as delete_client_in
from .clients.registry import register_client as register_client_in
from .clients.registry import update_client as update_client_in
from .context import Auth
from .devices import binding, registry, tokens
from .devices.binding import ActivationRequest
from .devices.tokens import DeviceContext
from .identity import enrolment
from .identity.enrolment import EnrolmentRequest
from .errors import Refused

AUTH = web.AppKey("auth", Auth)
routes = web.RouteTableDef()


class DeviceTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assertion: str = Field(min_length=10, max_length=4096, description="compact JWS signed by the device key")


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: str = Field(min_length=10, max_length=8192, description="compact JWS signed by the device key")


def refused(exc: Refused) -> Problem:
    return Problem(str(exc), status=exc.status, title=exc.reason.replace("-", " ").capitalize(), slug=exc.reason, **exc.extra)


async def enrolling_actor(request: web.Request, auth: Auth) -> tuple[str, str]:
    """(actor, assurance): a kiosk with scope `enrol` proofs in person (`plus`); sandbox self-registration is `basic`."""
    header = request.headers.get("Authorization")
    if header is None and auth.settings.sandbox:
        return "self-registration", "basic"
    credentials = parse_basic(header)
    client = await authenticate_client(auth.db, *credentials) if credentials else None
    if client is None:
        raise Unauthorized("kiosk client credentials are required", headers={"WWW-Authenticate": 'Basic realm="harbour-id"'})
    if not client.may("enrol") or client.kind != "kiosk":
        raise Problem("this client may not enrol citizens", status=403, title="Forbidden", slug="insufficient-scope")
    return client.client_id, "plus"


async def current_device(request: web.Request) -> DeviceContext:
    auth = request.app[AUTH]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a device access token is required", headers={"WWW-Authenticate": 'Bearer realm="harbour-id"'})
    try:
        return await tokens.authenticate_device(auth.db, auth.signer, token.strip())
    except Refused as exc:
        problem = refused(exc)
        if exc.status == 401:
            problem.headers["WWW-Authenticate"] = f'Bearer realm="harbour-id", error="invalid_token", error_description="{exc.reason}"'
        raise problem from None


def is_admin(request: web.Request, auth: Auth) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return bool(auth.settings.admin_token) and scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), auth.settings.admin_token)


def registration_client_uri(auth: Auth, client_id: str) -> str:
    return f"{auth.settings.issuer}/v1/clients/{client_id}"


def client_view(auth: Auth, client: Client) -> dict:
    return {**client.public_view(), "registration_client_uri": registration_client_uri(auth, client.client_id)}


@routes.post("/v1/clients")
async def register_client(request: web.Request) -> web.Response:
    """RFC 7591-style registration: operators with the admin token; anyone in the sandbox (no kiosks, no shared sectors)."""
    auth = request.app[AUTH]
    admin = is_admin(request, auth)
    if not admin and not auth.settings.sandbox:
        raise Unauthorized("the admin token is required", headers={"WWW-Authenticate": 'Bearer realm="harbour-id"'})
    metadata = await parse_body(request, ClientMetadata)
    if not admin and (metadata.kind == "kiosk" or metadata.sector_identifier_uri or "enrol" in metadata.scope.split()):
        raise Problem("sandbox registrations cannot create kiosks or claim a shared sector", status=403, title="Forbidden", slug="forbidden")
    registered = await auth.transaction(
        lambda session: register_client_in(auth.db, session, metadata, registered_by="admin" if admin else "sandbox")
    )
    body = {**client_view(auth, registered.client), "client_id_issued_at": int(time.time()),
            "registration_access_token": registered.registration_access_token}
    if registered.client_secret:
        body |= {"client_secret": registered.client_secret, "client_secret_expires_at": 0}
    return web.json_response(body, status=201, headers={"Cache-Control": "no-store"})


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def registration_caller(request: web.Request, auth: Auth, client_id: str) -> str | None:
    """RFC 7592 §1: None for an operator (the admin token), else this client's registration access token.

    A client secret is no credential here. Any other caller is 401 without
    saying whether the client exists.
    """
    if is_admin(request, auth):
        return None
    token = bearer_token(request)
    if token is None or len(token) > 200 or await authenticate_registration(auth.db, client_id, token) is None:
        raise invalid_registration_token()
    return token


def invalid_registration_token() -> Unauthorized:
    return Unauthorized("this client's registration access token (or the admin token) is required",
                        headers={"WWW-Authenticate": 'Bearer realm="harbour-id", error="invalid_token"'})


@routes.get("/v1/clients/{client_id}")
async def read_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.1: the client's current registration (never its secret or token)."""
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    await registration_caller(request, auth, client_id)
    client = await find_client(auth.db, client_id)
    if client is None:
        raise NotFound("no such client")
    return web.json_response(client_view(auth, client), headers={"Cache-Control": "no-store"})


@routes.put("/v1/clients/{client_id}")
async def update_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.2: operators change anything but kind and method; the client itself only its own keys, contacts, logo, secret."""
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    token = await registration_caller(request, auth, client_id)
    update = await parse_body(request, ClientUpdate)
    try:
        updated = await auth.transaction(
            lambda session: update_client_in(auth.db, session, client_id, update, registration_token=token,
                                             updated_by="admin" if token is None else client_id)
        )
    except LookupError:
        raise NotFound("no such client") from None
    except StaleRegistrationToken:
        raise invalid_registration_token() from None
    except OperatorOnlyChange as exc:
        raise Problem(str(exc), status=403, title="Operator-only metadata", slug="operator-only-metadata", fields=exc.fields) from None
    except ValueError as exc:
        raise Problem(str(exc), status=409, title="Conflict", slug="conflict") from None
    body = client_view(auth, updated.client)
    if updated.registration_access_token:
        body["registration_access_token"] = updated.registration_access_token
    if updated.client_secret:
        body |= {"client_secret": updated.client_secret, "client_secret_expires_at": 0}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@routes.delete("/v1/clients/{client_id}")
async def delete_client(request: web.Request) -> web.Response:
    """RFC 7592 §2.3: the client (or an operator) removes the registration."""
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    token = await registration_caller(request, auth, client_id)
    try:
        await auth.transaction(
            lambda session: delete_client_in(auth.db, session, client_id, registration_token=token,
                                             deleted_by="admin" if token is None else client_id)
        )
    except LookupError:
        raise NotFound("no such client") from None
    except StaleRegistrationToken:
        raise invalid_registration_token() from None
    return web.Response(status=204)


@routes.post("/v1/enrolments")
async def create_enrolment(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    actor, assurance = await enrolling_actor(request, auth)
    body = await parse_body(request, EnrolmentRequest)
    try:
        result = await enrolment.enrol_citizen(auth, body, actor=actor, assurance=assurance)
    except Refused as exc:
        raise refused(exc) from None
    return web.json_response(result, status=201, headers={"Cache-Control": "no-store"})


@routes.post("/v1/devices/challenges")
async def create_device_challenge(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    nonce, expires_at = await binding.issue_nonce(auth.db, auth.settings.device_nonce_ttl_s)
    return web.json_response(
        {"nonce": nonce, "expires_at": expires_at.isoformat(), "audience": auth.devices_audience}, status=201
    )


@routes.post("/v1/devices")
async def activate_device(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    body = await parse_body(request, ActivationRequest)
    try:
        result = await binding.activate_device(auth, body)
    except Refused as exc:
        raise refused(exc) from None
    return web.json_response(result, status=201)


@routes.post("/v1/devices/token")
async def device_token(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    body = await parse_body(request, DeviceTokenRequest)
    try:
        token, ttl = await tokens.issue_device_token(
            auth.db, auth.signer, body.assertion, audience=auth.device_token_audience, ttl_s=auth.settings.device_token_ttl_s
        )
    except Refused as exc:
        raise refused(exc) from None
    return web.json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": "device"},
        headers={"Cache-Control": "no-store"},
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
    try:
        await auth.transaction(lambda session: registry.revoke_device(auth.db, session, device, target,
                                                                     device_token_ttl_s=auth.settings.device_token_ttl_s))
    except Refused as exc:
        raise refused(exc) from None
    return web.Response(status=204)


@routes.get("/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    device = await current_device(request)
    return web.json_response({"approvals": await queue.pending_prompts(request.app[AUTH].db, device.account_id, request.app[AUTH].field_cipher)})


@routes.get("/v1/approvals/{approval_id}")
async def show_approval(request: web.Request) -> web.Response:
    device = await current_device(request)
    try:
        prompt = await queue.get_prompt(request.app[AUTH].db, device.account_id, request.match_info["approval_id"], request.app[AUTH].field_cipher)
    except Refused as exc:
        raise refused(exc) from None
    return web.json_response(prompt)


@routes.post("/v1/approvals/{approval_id}/decision")
async def decide_approval(request: web.Request) -> web.Response:
    device = await current_device(request)
    auth = request.app[AUTH]
    body = await parse_body(request, DecisionRequest)
    approval_id = request.match_info["approval_id"]
    try:
        result = await auth.transaction(
            lambda session: decisions.decide(auth, session, device, approval_id, body.decision)
        )
    except Refused as exc:
        raise refused(exc) from None
    return web.json_response(result)

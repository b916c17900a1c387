"""auth's HTTP endpoints (clients, enrolment, devices, approvals): each declared once with its caller, body,
answers and refusals (libs/service/endpoints.py), which also make its OpenAPI operation.

Handlers call the domain and serialise; refusals are raised below and
rendered by the service kit, so no handler catches one.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from libs.callers import ClientCredentialsRequired, TokenRequired
from libs.service.endpoints import Endpoints

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
from .devices.tokens import DeviceContext
from .errors import (
    AccountInactive,
    ActivationCodeExpired,
    ActivationCodeUsed,
    ActivationLocked,
    AlreadyDecided,
    ApprovalExpired,
    ApprovalUnreadable,
    BadSignature,
    ClientConflict,
    DeviceInactive,
    DigestMismatch,
    DuplicateEnrolment,
    InvalidActivation,
    InvalidAssertion,
    InvalidDeviceKey,
    InvalidDeviceToken,
    InvalidNonce,
    InvalidProof,
    InvalidRegistrationToken,
    MalformedDecision,
    MayNotEnrol,
    NoSuchApproval,
    NoSuchClient,
    NoSuchDevice,
    OperatorOnlyChange,
    ProofingFailed,
    ReplayedAssertion,
    SandboxLimits,
    SelfieRefused,
    WrongApproval,
    WrongDevice,
)
from .identity import enrolment
from .identity.enrolment import EnrolmentRequest
from .views import (
    ClientRegistration,
    ClientUpdated,
    ClientView,
    DecisionRecorded,
    DeviceActivated,
    DeviceChallenge,
    DeviceList,
    DeviceToken,
    EnrolmentCreated,
    Prompt,
    PromptList,
)

NO_STORE = {"Cache-Control": "no-store"}
# What a device token can be refused for at a device endpoint.
DEVICE_REFUSALS = (TokenRequired, InvalidDeviceToken, DeviceInactive, AccountInactive)
DEVICE_401 = "no, invalid or expired device token, or the device is revoked (WWW-Authenticate: Bearer)"
DEVICE_403 = "the account is not active"

clients = Endpoints(tags=("clients",), security=("admin", "registrationToken"))
enrolments = Endpoints(tags=("enrolment",), security=("kioskBasic",))
devices = Endpoints(tags=("devices",))
approvals = Endpoints(tags=("approvals",), security=("deviceToken",))
ENDPOINTS = (clients, enrolments, devices, approvals)


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


def with_secrets(body: dict, client_secret: str | None) -> dict:
    return body | {"client_secret": client_secret, "client_secret_expires_at": 0} if client_secret else body


# --- the client registry -----------------------------------------------------


async def registrar(request: web.Request) -> str:
    """Who registers: an operator with the admin token, or (in the sandbox only) anyone."""
    auth = request.app[AUTH]
    if is_admin(request, auth):
        return "admin"
    if not auth.settings.sandbox:
        raise TokenRequired("the admin token is required")
    return "sandbox"


async def registration_manager(request: web.Request) -> str | None:
    """RFC 7592: None for an operator, else the client's own registration access token."""
    return await registration_caller(request, request.app[AUTH], request.match_info["client_id"])


@clients.post(
    "/v1/clients", summary="Register a client (RFC 7591)", caller=registrar, body=ClientMetadata,
    answers={201: ClientRegistration, 401: "outside the sandbox, the admin token is required",
             403: "sandbox registrations cannot create kiosks, ask for enrol or claim a shared sector"},
    refusals=(TokenRequired, SandboxLimits), security=("admin",), security_optional=True,
    description="Operators with the admin token; in the sandbox anyone, except kiosks, the enrol scope and sector_identifier_uri.",
)
async def register_client(request: web.Request, caller: str, body: ClientMetadata) -> web.Response:
    auth = request.app[AUTH]
    if caller == "sandbox" and (body.kind == "kiosk" or body.sector_identifier_uri or "enrol" in body.scope.split()):
        raise SandboxLimits("sandbox registrations cannot create kiosks or claim a shared sector")
    registered = await auth.transaction(lambda session: register_client_in(auth, session, body, registered_by=caller))
    answer = {**client_view(auth, registered.client), "client_id_issued_at": int(auth.clock.now().timestamp()),
              "registration_access_token": registered.registration_access_token}
    return web.json_response(with_secrets(answer, registered.client_secret), status=201, headers=NO_STORE)


@clients.get(
    "/v1/clients/{client_id}", summary="Read a client's registration (RFC 7592 §2.1)", caller=registration_manager,
    answers={200: ClientView, 401: "neither this client's registration access token nor the admin token (WWW-Authenticate: Bearer)",
             404: "an operator asked for an unknown client"},
    refusals=(InvalidRegistrationToken, NoSuchClient),
)
async def read_client(request: web.Request, caller: str | None) -> web.Response:
    auth = request.app[AUTH]
    client = await find_client(auth.db, request.match_info["client_id"])
    if client is None:
        raise NoSuchClient("no such client")
    return web.json_response(client_view(auth, client), headers=NO_STORE)


@clients.put(
    "/v1/clients/{client_id}", summary="Replace a client's metadata (RFC 7592 §2.2)", caller=registration_manager, body=ClientUpdate,
    answers={200: ClientUpdated,
             401: "neither this client's registration access token nor the admin token (WWW-Authenticate: Bearer)",
             403: "operator-only-metadata: the client tried to change scope, form-fill fields, redirect or callback URIs, "
                  "kind, sector or name (`fields` lists them); nothing changed",
             404: "an operator named an unknown client",
             409: "the kind or authentication method would change, client_id or client_secret do not match, "
                  "or a private_key_jwt client asked for a secret"},
    refusals=(InvalidRegistrationToken, OperatorOnlyChange, NoSuchClient, ClientConflict),
    description="With the registration access token a client may change only its own keys (jwks, jwks_uri, encryption_jwk), "
                "contacts and logo_uri, and ask for a new secret (rotate_client_secret); every such update rotates the "
                "registration access token. Everything else is the operators' (admin token).",
)
async def update_client(request: web.Request, caller: str | None, body: ClientUpdate) -> web.Response:
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    updated = await auth.transaction(
        lambda session: update_client_in(auth, session, client_id, body, registration_token=caller,
                                         updated_by="admin" if caller is None else client_id)
    )
    answer = client_view(auth, updated.client)
    if updated.registration_access_token:
        answer["registration_access_token"] = updated.registration_access_token
    return web.json_response(with_secrets(answer, updated.client_secret), headers=NO_STORE)


@clients.delete(
    "/v1/clients/{client_id}", summary="Delete a client (RFC 7592 §2.3)", caller=registration_manager,
    answers={204: "deleted: its secret, assertions and registration token no longer work",
             401: "neither this client's registration access token nor the admin token (WWW-Authenticate: Bearer)",
             404: "an operator named an unknown client"},
    refusals=(InvalidRegistrationToken, NoSuchClient),
)
async def delete_client(request: web.Request, caller: str | None) -> None:
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    await auth.transaction(
        lambda session: delete_client_in(auth, session, client_id, registration_token=caller,
                                         deleted_by="admin" if caller is None else client_id)
    )


# --- enrolment ---------------------------------------------------------------


async def enroller(request: web.Request) -> tuple[str, str]:
    return await enrolling_actor(request, request.app[AUTH])


@enrolments.post(
    "/v1/enrolments", summary="Enrol a citizen (kiosk: assurance plus; sandbox self-registration: basic)",
    caller=enroller, body=EnrolmentRequest,
    answers={201: EnrolmentCreated,
             401: "wrong kiosk credentials, or none outside the sandbox (WWW-Authenticate: Basic)",
             403: "insufficient-scope: the client is not a kiosk with the enrol scope",
             409: "duplicate-enrolment: the card number is already enrolled",
             413: "the body is above 4 MiB",
             422: "validation-failed (`errors` names each field), selfie-rejected or proofing-failed"},
    refusals=(ClientCredentialsRequired, MayNotEnrol, DuplicateEnrolment, SelfieRefused, ProofingFailed),
    security_optional=True,
)
async def create_enrolment(request: web.Request, caller: tuple[str, str], body: EnrolmentRequest) -> web.Response:
    actor, assurance = caller
    auth = request.app[AUTH]
    result = await enrolment.enrol_citizen(auth, auth.matcher, body, actor=actor, assurance=assurance)
    return web.json_response(result, status=201, headers=NO_STORE)


# --- devices -----------------------------------------------------------------


@devices.post("/v1/devices/challenges", summary="A single-use nonce for a device's proof of possession",
              answers={201: DeviceChallenge})
async def create_device_challenge(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    nonce, expires_at = await binding.issue_nonce(auth, auth.settings.device_nonce_ttl_s)
    return web.json_response(
        {"nonce": nonce, "expires_at": expires_at.isoformat(), "audience": auth.devices_audience}, status=201
    )


@devices.post(
    "/v1/devices", summary="Bind a citizen's first device with the activation code", body=ActivationRequest,
    answers={201: DeviceActivated,
             400: "malformed body, invalid-key, invalid-proof, invalid-nonce, invalid-activation (with attempts_left), used or expired",
             403: "locked after too many wrong codes, or account-inactive"},
    refusals=(InvalidDeviceKey, InvalidProof, InvalidNonce, InvalidActivation, ActivationCodeUsed, ActivationCodeExpired,
              ActivationLocked, AccountInactive),
)
async def activate_device(request: web.Request, body: ActivationRequest) -> web.Response:
    return web.json_response(await binding.activate_device(request.app[AUTH], body), status=201)


@devices.post(
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


@devices.get("/v1/devices", summary="The account's devices", caller=current_device,
             answers={200: DeviceList, 401: DEVICE_401, 403: DEVICE_403}, refusals=DEVICE_REFUSALS, security=("deviceToken",))
async def list_devices(request: web.Request, caller: DeviceContext) -> web.Response:
    listed = await registry.list_devices(request.app[AUTH].db, caller.account_id)
    return web.json_response({"devices": listed, "current_device_id": caller.device_id})


@devices.delete("/v1/devices/{device_id}", summary="Revoke a device of the account (this one or another)", caller=current_device,
                answers={204: None, 401: DEVICE_401, 403: DEVICE_403, 404: "no such active device on this account"},
                refusals=(*DEVICE_REFUSALS, NoSuchDevice), security=("deviceToken",))
async def revoke_device(request: web.Request, caller: DeviceContext) -> None:
    auth = request.app[AUTH]
    target = request.match_info["device_id"]
    await auth.transaction(lambda session: registry.revoke_device(auth, session, caller, target))


# --- approvals ---------------------------------------------------------------


@approvals.get("/v1/approvals", summary="The pending prompts of the account, soonest expiry first", caller=current_device,
               answers={200: PromptList, 401: DEVICE_401, 403: DEVICE_403}, refusals=DEVICE_REFUSALS)
async def list_approvals(request: web.Request, caller: DeviceContext) -> web.Response:
    return web.json_response({"approvals": await queue.pending_prompts(request.app[AUTH], caller.account_id)})


@approvals.get("/v1/approvals/{approval_id}", summary="One prompt of the account, any status", caller=current_device,
               answers={200: Prompt, 401: DEVICE_401, 403: DEVICE_403, 404: "not this account's prompt",
                        410: "the prompt can no longer be shown (its key left the KEK ring)"},
               refusals=(*DEVICE_REFUSALS, NoSuchApproval, ApprovalUnreadable))
async def show_approval(request: web.Request, caller: DeviceContext) -> web.Response:
    return web.json_response(await queue.get_prompt(request.app[AUTH], caller.account_id, request.match_info["approval_id"]))


@approvals.post(
    "/v1/approvals/{approval_id}/decision", summary="Approve or deny a prompt with a device-signed decision",
    caller=current_device, body=DecisionRequest,
    answers={200: DecisionRecorded, 401: DEVICE_401,
             400: "malformed body or decision",
             403: "account-inactive, wrong-device, bad-signature, digest-mismatch, wrong-approval or assurance-too-low",
             404: "not this account's prompt",
             409: "already-decided (a replay too)",
             410: "the prompt has expired"},
    refusals=(*DEVICE_REFUSALS, MalformedDecision, WrongDevice, BadSignature, DigestMismatch, WrongApproval, NoSuchApproval,
              AlreadyDecided, ApprovalExpired, ApprovalUnreadable),
)
async def decide_approval(request: web.Request, caller: DeviceContext, body: DecisionRequest) -> web.Response:
    auth = request.app[AUTH]
    approval_id = request.match_info["approval_id"]
    result = await auth.transaction(lambda session: decisions.decide(auth, session, caller, approval_id, body.decision))
    return web.json_response(result)


# Every route above, for app.add_routes (after the declarations, which fill the groups).
routes = [route for group in ENDPOINTS for route in group.routes]

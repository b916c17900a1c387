"""The client registry over HTTP: registration (RFC 7591) by operators or, in the sandbox, anyone; RFC 7592 management."""

from __future__ import annotations

from aiohttp import web

from libs.callers import TokenRequired
from libs.service.endpoints import NO_STORE, Endpoints
from libs.service.problems import ValidationFailed

from ..callers import AUTH, registrar, registration_manager
from ..clients.metadata import ClientMetadata, ClientUpdate
from ..clients.registry import Client, delete_client, find_client, forget_client, register_client, update_client
from ..context import Auth
from ..errors import ClientConflict, InvalidRegistrationToken, NoSuchClient, OperatorOnlyChange, SandboxLimits
from ..oidc import fapi
from ..views import ClientRegistration, ClientUpdated, ClientView

endpoints = Endpoints(tags=("clients",), security=("admin", "registrationToken"))

NOT_MANAGER = "neither this client's registration access token nor the admin token (WWW-Authenticate: Bearer)"


def client_view(auth: Auth, client: Client) -> dict:
    return {**client.public_view(), "registration_client_uri": f"{auth.settings.issuer}/v1/clients/{client.client_id}"}


def check_fapi_outside_sandbox(auth: Auth, body: ClientMetadata) -> None:
    """FAPI 2.0 (oidc/fapi.py): outside the sandbox, https redirect URIs only (422, as any other invalid member)."""
    if not auth.settings.sandbox and (problem := fapi.production_problem(body)):
        raise ValidationFailed(problem)


def with_secrets(body: dict, client_secret: str | None) -> dict:
    return body | {"client_secret": client_secret, "client_secret_expires_at": 0} if client_secret else body


@endpoints.post(
    "/v1/clients", summary="Register a client (RFC 7591)", caller=registrar, body=ClientMetadata,
    answers={201: ClientRegistration, 401: "outside the sandbox, the admin token is required",
             403: "sandbox registrations cannot create kiosks, ask for enrol or claim a shared sector"},
    refusals=(TokenRequired, SandboxLimits), security=("admin",), security_optional=True,
    description="Operators with the admin token; in the sandbox anyone, except kiosks, the enrol scope and sector_identifier_uri.",
)
async def register(request: web.Request, caller: str, body: ClientMetadata) -> web.Response:
    auth = request.app[AUTH]
    if caller == "sandbox" and (body.kind == "kiosk" or body.sector_identifier_uri or "enrol" in body.scope.split()):
        raise SandboxLimits("sandbox registrations cannot create kiosks or claim a shared sector")
    check_fapi_outside_sandbox(auth, body)
    registered = await auth.transaction(lambda session: register_client(auth, session, body, registered_by=caller))
    answer = {**client_view(auth, registered.client), "client_id_issued_at": int(auth.clock.now().timestamp()),
              "registration_access_token": registered.registration_access_token}
    return web.json_response(with_secrets(answer, registered.client_secret), status=201, headers=NO_STORE)


@endpoints.get(
    "/v1/clients/{client_id}", summary="Read a client's registration (RFC 7592 §2.1)", caller=registration_manager,
    answers={200: ClientView, 401: NOT_MANAGER, 404: "an operator asked for an unknown client"},
    refusals=(InvalidRegistrationToken, NoSuchClient),
)
async def read(request: web.Request, caller: str | None) -> web.Response:
    auth = request.app[AUTH]
    client = await find_client(auth.db, request.match_info["client_id"])
    if client is None:
        raise NoSuchClient("no such client")
    return web.json_response(client_view(auth, client), headers=NO_STORE)


@endpoints.put(
    "/v1/clients/{client_id}", summary="Replace a client's metadata (RFC 7592 §2.2)", caller=registration_manager, body=ClientUpdate,
    answers={200: ClientUpdated,
             401: NOT_MANAGER,
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
async def update(request: web.Request, caller: str | None, body: ClientUpdate) -> web.Response:
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    check_fapi_outside_sandbox(auth, body)
    updated = await auth.transaction(
        lambda session: update_client(auth, session, client_id, body, registration_token=caller,
                                      updated_by="admin" if caller is None else client_id)
    )
    forget_client(auth.db, client_id)  # committed: this replica's next request reads it afresh
    answer = client_view(auth, updated.client)
    if updated.registration_access_token:
        answer["registration_access_token"] = updated.registration_access_token
    return web.json_response(with_secrets(answer, updated.client_secret), headers=NO_STORE)


@endpoints.delete(
    "/v1/clients/{client_id}", summary="Delete a client (RFC 7592 §2.3)", caller=registration_manager,
    answers={204: "deleted: its secret, assertions and registration token no longer work",
             401: NOT_MANAGER,
             404: "an operator named an unknown client"},
    refusals=(InvalidRegistrationToken, NoSuchClient),
)
async def delete(request: web.Request, caller: str | None) -> None:
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    await auth.transaction(
        lambda session: delete_client(auth, session, client_id, registration_token=caller,
                                      deleted_by="admin" if caller is None else client_id)
    )
    forget_client(auth.db, client_id)

"""Who is calling auth's HTTP API: the endpoints' callers (libs/service/endpoints.py), the OpenID Connect ones included.

A citizen's device (device token), a kiosk (HTTP Basic client credentials
with scope `enrol`), an operator (the admin token) or a client managing its
own registration (RFC 7592 registration access token). Header parsing and
challenges are libs/callers'; the checks are auth's own, since it issues
these credentials.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from aiohttp import web

from libs.callers import (ClientCredentialsRequired, InvalidDPoPProof, InvalidDPoPToken, TokenRequired, access_token_of,
                          basic_credentials, bearer_token, check_sender)
from libs.callers import InvalidAccessToken as InvalidRegistrationToken

from .clients.registry import authenticate_client, authenticate_registration
from .context import Auth
from .devices.tokens import DeviceContext, authenticate_device
from .errors import AccountInactive, DeviceInactive, InvalidDeviceToken, MayNotEnrol

# The one context every auth handler reads (set at start-up by app.py).
AUTH = web.AppKey("auth", Auth)

# What `current_device` can refuse, for a device endpoint's `refusals=` (described by libs/service/openapi's DEVICE_AUTH_ERRORS).
DEVICE_REFUSALS = (TokenRequired, InvalidDeviceToken, InvalidDPoPToken, InvalidDPoPProof, DeviceInactive, AccountInactive)


async def current_device(request: web.Request, on_claims: Callable[[dict[str, Any]], None] | None = None) -> DeviceContext:
    """The citizen's device behind the request's device token, checked afresh (device and account active).

    A device token is DPoP-bound (`cnf.jkt` = the device key's thumbprint): presented as `Authorization: DPoP` with a
    proof for this request signed by that key, checked as at every service (libs/callers.check_sender).
    `on_claims`: given the token's verified claims (the approvals stream keeps them)."""
    presented = access_token_of(request.headers.get("Authorization"))
    if presented is None:
        raise TokenRequired("a device access token is required")
    scheme, token = presented
    auth = request.app[AUTH]

    def sender(claims: dict[str, Any]) -> None:
        check_sender(request, auth.settings.issuer, scheme, token, claims)
        if on_claims is not None:
            on_claims(claims)

    return await authenticate_device(auth, token, sender=sender)


async def enroller(request: web.Request) -> tuple[str, str]:
    """(actor, assurance): a kiosk with scope `enrol` proofs in person (`plus`); sandbox self-registration is `basic`."""
    auth = request.app[AUTH]
    header = request.headers.get("Authorization")
    if header is None and auth.settings.sandbox:
        return "self-registration", "basic"
    credentials = basic_credentials(header)
    client = await authenticate_client(auth.db, *credentials) if credentials else None
    if client is None:
        raise ClientCredentialsRequired("kiosk client credentials are required")
    if not client.may("enrol") or client.kind != "kiosk":
        raise MayNotEnrol("this client may not enrol citizens")
    return client.client_id, "plus"


def is_admin(request: web.Request, auth: Auth) -> bool:
    """The operators' admin token (compared in constant time); never when none is configured."""
    token = bearer_token(request.headers.get("Authorization"))
    return bool(auth.settings.admin_token) and token is not None and hmac.compare_digest(token, auth.settings.admin_token)


def invalid_registration_token() -> InvalidRegistrationToken:
    return InvalidRegistrationToken("this client's registration access token (or the admin token) is required")


async def registrar(request: web.Request) -> str:
    """Who registers a client: an operator with the admin token, or (in the sandbox only) anyone."""
    auth = request.app[AUTH]
    if is_admin(request, auth):
        return "admin"
    if not auth.settings.sandbox:
        raise TokenRequired("the admin token is required")
    return "sandbox"


async def registration_manager(request: web.Request) -> str | None:
    """RFC 7592 §1: None for an operator (the admin token), else the registration access token of the path's client.

    A client secret is no credential here. Any other caller is 401 without
    saying whether the client exists.
    """
    auth = request.app[AUTH]
    client_id = request.match_info["client_id"]
    if is_admin(request, auth):
        return None
    token = bearer_token(request.headers.get("Authorization"))
    if token is None or len(token) > 200 or await authenticate_registration(auth.db, client_id, token) is None:
        raise invalid_registration_token()
    return token

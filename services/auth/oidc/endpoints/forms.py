"""The forms the OAuth endpoints read, the client that sent one, and how both appear in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from libs.service.openapi import oauth_error

from ...callers import AUTH
from ...clients.registry import Client
from ..authorization import single_params
from ..client_auth import authenticate_client
from ..errors import InvalidRequest


async def read_form(request: web.Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (RFC 6749 §3.2, OIDC Core §3.1.2.1), each parameter once.

    Raises InvalidRequest: the OAuth endpoints answer it as JSON, the authorization endpoint as an error
    page. A body above the size limit stays a 413 (the service kit's problem).
    """
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError):  # not UTF-8 (or the declared charset), or an unknown charset
        raise InvalidRequest("the form is not readable text in its charset") from None
    return single_params(form)


@dataclass(frozen=True)
class ClientForm:
    """A client-authenticated request: its form and the client it authenticated as."""

    form: dict[str, str]
    client: Client


def authenticated_client(endpoint: str) -> Callable[[web.Request], Awaitable[ClientForm]]:
    """The `caller` of a client-authenticated endpoint; assertions may name the issuer, the token endpoint or this one."""

    async def caller(request: web.Request) -> ClientForm:
        auth = request.config_dict[AUTH]
        form = await read_form(request)
        issuer = auth.settings.issuer
        audiences = [issuer, f"{issuer}/oidc/token", f"{issuer}/oidc/{endpoint}"]
        client = await authenticate_client(auth.db, request.headers.get("Authorization"), form, audiences=audiences)
        return ClientForm(form, client)

    return caller


# --- in the OpenAPI document ---------------------------------------------------

PARAM = {"type": "string", "maxLength": 2048}
AUTHORIZATION_PARAMS: dict[str, dict[str, Any]] = {
    "client_id": {**PARAM, "description": "the client's id"},
    "redirect_uri": {**PARAM, "description": "exactly as registered"},
    "response_type": {**PARAM, "enum": ["code"]},
    "scope": {**PARAM, "description": "space-separated; must include openid"},
    "state": PARAM,
    "nonce": PARAM,
    "code_challenge": {**PARAM, "description": "PKCE (RFC 7636), S256"},
    "code_challenge_method": {**PARAM, "enum": ["S256"]},
    "prompt": {**PARAM, "enum": ["none", "login", "consent"]},
    "max_age": {**PARAM, "pattern": "^[0-9]+$"},
    "acr_values": {**PARAM, "description": "urn:harbour-id:loa:basic, urn:harbour-id:loa:plus"},
    "response_mode": {**PARAM, "enum": ["query", "form_post"]},
    "ui_locales": {**PARAM, "description": "en, zh-HK"},
    "login_hint": {**PARAM, "description": "the citizen's sub at this client: only that citizen's phone may approve"},
    "id_token_hint": {**PARAM, "description": "an ID token this issuer signed for this client (expired or not): only its "
                                              "citizen's phone may approve"},
    "request_uri": {**PARAM, "description": "from POST /oidc/par (RFC 9126)"},
    "dpop_jkt": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$", "description": "RFC 9449 §10: the SHA-256 "
                 "thumbprint of the DPoP key the code may only be redeemed with (at PAR, a DPoP proof sets it)"},
    "request": {"type": "string", "maxLength": 8192, "description": "a request object (RFC 9101): the request's parameters "
                "as a JWT the client signed (ES256, a key of its jwks); the other parameters but client_id are ignored"},
}
CLIENT_AUTH_FIELDS: dict[str, dict[str, Any]] = {
    "client_id": PARAM,
    "client_secret": {**PARAM, "description": "client_secret_post"},
    "client_assertion_type": {**PARAM, "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]},
    "client_assertion": {**PARAM, "description": "private_key_jwt (RFC 7523): ES256, iss = sub = client id, aud = the issuer or the endpoint"},
}
# The answers of every client-authenticated endpoint besides its own (errors.py has a class for each code).
OAUTH_ERRORS = {
    400: oauth_error("invalid_request, invalid_grant, invalid_scope, unsupported_grant_type... (RFC 6749 §5.2)"),
    401: oauth_error("invalid_client: client authentication failed (WWW-Authenticate: Basic)"),
    413: "the body is too large",
}
CLIENT_AUTHENTICATED = {"security": ("clientAuth",), "security_optional": True}


def query_params(params: dict[str, dict[str, Any]], *, required: tuple[str, ...] = ()) -> tuple[tuple[str, dict[str, Any], bool], ...]:
    return tuple((name, schema, name in required) for name, schema in params.items())

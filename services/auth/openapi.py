"""auth's OpenAPI document: the operations its endpoints declare (api.py), and the OpenID Connect provider's.

The accounts, devices, approvals and clients endpoints declare their own
operations with their routes (libs/service/endpoints.py). The provider's
endpoints (oidc/api.py) answer as the OAuth and OpenID specifications say
(forms, redirects, pages, OAuth errors); their operations are listed here.
Request bodies are the very models the handlers parse with; the response
models describe exactly what the handlers return (the schemathesis run in
tests/e2e/test_openapi_schemathesis.py catches a drift).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from libs.service.openapi import DEVICE_AUTH_ERRORS, JSON_BODY_ERRORS, Body, Operation, html, oauth_error, redirect

from .api import ENDPOINTS
from .identity.enrolment import Assurance
from .oidc.api import LinkRequest
from .views import Answer, Prompt

TITLE = "Harbour ID auth"


# --- OpenID Connect ----------------------------------------------------------


class ProviderMetadata(BaseModel):
    """OpenID Connect Discovery 1.0 metadata; the members beyond these are listed by the document itself."""

    model_config = ConfigDict(extra="allow")
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]


class PublicJWK(Answer):
    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str
    y: str
    kid: str
    use: Literal["sig"]
    alg: Literal["ES256"]


class JWKS(Answer):
    keys: list[PublicJWK]


class AuthorizationStatus(Answer):
    status: Literal["pending", "approved", "denied", "expired"]
    redirect_to: str | SkipJsonSchema[None] = Field(default=None, description="where the page goes once the citizen has decided")


class PushedAuthorizationResponse(Answer):
    request_uri: str
    expires_in: int


class TokenResponse(Answer):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    id_token: str | SkipJsonSchema[None] = None
    refresh_token: str | SkipJsonSchema[None] = None


class BackchannelAuthenticationResponse(Answer):
    auth_req_id: str
    expires_in: int
    interval: int


class UserInfo(Answer):
    sub: str
    assurance_level: Assurance


class Introspection(Answer):
    """RFC 7662: `{"active": false}` for anything that is not an active token of the calling client."""

    active: bool
    token_type: Literal["Bearer", "refresh_token"] | SkipJsonSchema[None] = None
    client_id: str | SkipJsonSchema[None] = None
    sub: str | SkipJsonSchema[None] = None
    scope: str | SkipJsonSchema[None] = None
    exp: int | SkipJsonSchema[None] = None
    iat: int | SkipJsonSchema[None] = None
    iss: str | SkipJsonSchema[None] = None
    aud: str | SkipJsonSchema[None] = None
    jti: str | SkipJsonSchema[None] = None
    acr: str | SkipJsonSchema[None] = None
    auth_time: int | SkipJsonSchema[None] = None


# --- the operations ----------------------------------------------------------

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
    "login_hint": PARAM,
    "request_uri": {**PARAM, "description": "from POST /oidc/par (RFC 9126)"},
}
CLIENT_AUTH_FIELDS: dict[str, dict[str, Any]] = {
    "client_id": PARAM,
    "client_secret": {**PARAM, "description": "client_secret_post"},
    "client_assertion_type": {**PARAM, "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]},
    "client_assertion": {**PARAM, "description": "private_key_jwt (RFC 7523): ES256, iss = sub = client id, aud = the issuer or the endpoint"},
}
OAUTH_ERRORS = {
    400: oauth_error("invalid_request, invalid_grant, invalid_scope, unsupported_grant_type... (RFC 6749 §5.2)"),
    401: oauth_error("invalid_client: client authentication failed (WWW-Authenticate: Basic)"),
    413: "the body is too large",
}
AUTHORIZE_RESPONSES = {
    200: html("the login page (QR code, app link, matching code), or the auto-posting form of response_mode=form_post"),
    303: redirect("the authorization response for the client: code or error, with state and iss (RFC 9207)"),
    400: html("an error page: unknown client, unregistered redirect_uri, malformed or repeated parameters — never redirected"),
}


def _query(params: dict[str, dict[str, Any]], *, required: tuple[str, ...] = ()) -> tuple[tuple[str, dict[str, Any], bool], ...]:
    return tuple((name, schema, name in required) for name, schema in params.items())


OIDC_OPERATIONS: tuple[Operation, ...] = (
    # The app opens a login link (oidc/api.py)
    Operation(
        "POST", "/v1/approvals/links", "Open a harbourid:// login link: queue its prompt for this citizen", ("approvals",),
        request_model=LinkRequest,
        responses={201: Prompt, **JSON_BODY_ERRORS, **DEVICE_AUTH_ERRORS,
                   400: "malformed body, or not a Harbour ID login link",
                   403: "account-inactive, or assurance-too-low for the client's acr_values",
                   409: "link-unusable: the login has expired or belongs to someone else"},
        security=("deviceToken",),
    ),
    # OpenID Connect
    Operation(
        "GET", "/.well-known/openid-configuration", "OpenID Connect Discovery metadata", ("openid-connect",),
        responses={200: ProviderMetadata},
    ),
    Operation("GET", "/oidc/jwks", "The token-signing keys (RFC 7517)", ("openid-connect",), responses={200: JWKS}),
    Operation(
        "GET", "/oidc/authorize", "Authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1)", ("openid-connect",),
        query_params=_query(AUTHORIZATION_PARAMS), responses=AUTHORIZE_RESPONSES,
    ),
    Operation(
        "POST", "/oidc/authorize", "Authorization endpoint, parameters in a form", ("openid-connect",),
        form_fields=AUTHORIZATION_PARAMS, responses={**AUTHORIZE_RESPONSES, 413: "the body is too large"},
    ),
    Operation(
        "GET", "/oidc/authorize/{tx}/status", "The login page polls this until the citizen has decided", ("openid-connect",),
        query_params=(("k", {"type": "string", "description": "the browser key only the login page knows"}, False),),
        responses={200: AuthorizationStatus, 404: "no such login (or the wrong k)"},
    ),
    Operation(
        "GET", "/oidc/authorize/{tx}/complete", "Finish a decided login: set the session, answer the client", ("openid-connect",),
        query_params=(("k", {"type": "string", "description": "the browser key only the login page knows"}, False),),
        responses={200: html("the auto-posting form of response_mode=form_post"),
                   303: redirect("to the client's redirect_uri with code (or error), state and iss"),
                   404: "no such decided login (or the wrong k)"},
    ),
    Operation(
        "POST", "/oidc/par", "Pushed authorization request (RFC 9126)", ("openid-connect",),
        form_fields={**AUTHORIZATION_PARAMS, **CLIENT_AUTH_FIELDS},
        responses={201: PushedAuthorizationResponse, **OAUTH_ERRORS},
        security=("clientAuth",), security_optional=True,
    ),
    Operation(
        "POST", "/oidc/token", "Token endpoint: authorization_code, refresh_token, client_credentials, CIBA", ("openid-connect",),
        form_fields={
            "grant_type": {"type": "string", "enum": ["authorization_code", "refresh_token", "client_credentials",
                                                      "urn:openid:params:grant-type:ciba"]},
            "code": PARAM, "redirect_uri": PARAM, "code_verifier": PARAM, "refresh_token": PARAM, "scope": PARAM,
            "auth_req_id": PARAM, **CLIENT_AUTH_FIELDS,
        },
        form_required=("grant_type",),
        responses={200: TokenResponse, **OAUTH_ERRORS,
                   400: oauth_error("invalid_request, invalid_grant, invalid_scope, unauthorized_client, unsupported_grant_type; "
                                    "CIBA: authorization_pending, slow_down, access_denied, expired_token")},
        security=("clientAuth",), security_optional=True,
    ),
    Operation(
        "POST", "/oidc/bc-authorize", "Backchannel authentication request (CIBA Core, poll mode)", ("openid-connect",),
        form_fields={
            "scope": PARAM, "login_hint": {**PARAM, "description": "the citizen's sub at this client"},
            "login_hint_token": PARAM, "id_token_hint": PARAM, "binding_message": {**PARAM, "maxLength": 40},
            "acr_values": PARAM, "requested_expiry": {**PARAM, "pattern": "^[0-9]+$"}, **CLIENT_AUTH_FIELDS,
        },
        responses={200: BackchannelAuthenticationResponse, **OAUTH_ERRORS,
                   400: oauth_error("invalid_request, invalid_scope, invalid_binding_message, unknown_user_id"),
                   403: oauth_error("access_denied: the citizen's assurance is too low for acr_values")},
        security=("clientAuth",), security_optional=True,
    ),
    Operation(
        "GET", "/oidc/userinfo", "UserInfo (OIDC Core §5.3): the pairwise sub and the assurance level", ("openid-connect",),
        responses={200: UserInfo,
                   401: oauth_error("invalid_token (WWW-Authenticate: Bearer)"),
                   403: oauth_error("insufficient_scope: the token was not issued for openid")},
        security=("bearer",),
    ),
    Operation(
        "POST", "/oidc/userinfo", "UserInfo, by POST", ("openid-connect",),
        responses={200: UserInfo,
                   401: oauth_error("invalid_token (WWW-Authenticate: Bearer)"),
                   403: oauth_error("insufficient_scope: the token was not issued for openid")},
        security=("bearer",),
    ),
    Operation(
        "POST", "/oidc/introspect", "Token introspection (RFC 7662), for the calling client's own tokens", ("openid-connect",),
        form_fields={"token": PARAM, "token_type_hint": PARAM, **CLIENT_AUTH_FIELDS},
        responses={200: Introspection, **OAUTH_ERRORS},
        security=("clientAuth",), security_optional=True,
    ),
    Operation(
        "POST", "/oidc/revoke", "Token revocation (RFC 7009): always 200 for an authenticated client", ("openid-connect",),
        form_fields={"token": PARAM, "token_type_hint": PARAM, **CLIENT_AUTH_FIELDS},
        responses={200: Body("revoked (or nothing to revoke); no body"), **OAUTH_ERRORS},
        security=("clientAuth",), security_optional=True,
    ),
    Operation(
        "GET", "/oidc/logout", "RP-Initiated Logout 1.0: end the browser session", ("openid-connect",),
        query_params=_query({"id_token_hint": PARAM, "client_id": PARAM, "post_logout_redirect_uri": PARAM, "state": PARAM,
                             "ui_locales": PARAM}),
        responses={200: html("the logged-out page"),
                   303: redirect("to a registered post_logout_redirect_uri, with state"),
                   400: html("an error page: repeated or too long parameters")},
    ),
)

OPERATIONS: tuple[Operation, ...] = (*(op for group in ENDPOINTS for op in group.operations), *OIDC_OPERATIONS)

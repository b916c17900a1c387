"""auth's public operations for the OpenAPI document (libs/service/openapi.py).

Request bodies are the very models the handlers parse with; the response
models below describe exactly what the handlers return (they are not used to
build the answers, so a handler change must be mirrored here — the
schemathesis run in tests/e2e/test_openapi_schemathesis.py catches a drift).
Optional members are left out of the answer rather than sent as null, which
`SkipJsonSchema[None]` expresses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from libs.approvals import ApprovalRequest, Requester
from libs.service.openapi import DEVICE_AUTH_ERRORS, JSON_BODY_ERRORS, Body, Operation, html, oauth_error, redirect

from .api import DecisionRequest, DeviceTokenRequest
from .clients.metadata import AuthMethod, ClientKind, ClientMetadata, ClientUpdate
from .devices.binding import ActivationRequest
from .identity.enrolment import Assurance, EnrolmentRequest
from .oidc.api import LinkRequest

TITLE = "Harbour ID auth"


def _absent_not_null(schema: dict[str, Any]) -> None:
    """Members that are left out rather than sent as null have no `default: null` either."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_absent_not_null)


# --- clients -----------------------------------------------------------------


class ClientView(_Answer):
    """A registered client's metadata (never its secret or registration token); RFC 7592 §3."""

    client_id: str
    client_name: str
    kind: ClientKind
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    token_endpoint_auth_method: AuthMethod
    jwks: dict[str, Any] | SkipJsonSchema[None] = None
    jwks_uri: str | SkipJsonSchema[None] = None
    scope: str
    formfill_fields: list[str]
    sector_identifier_uri: str | SkipJsonSchema[None] = None
    callback_urls: list[str]
    encryption_jwk: dict[str, Any] | SkipJsonSchema[None] = None
    contacts: list[str]
    logo_uri: str | SkipJsonSchema[None] = None
    registration_client_uri: str = Field(description="where the client reads, updates and deletes its registration (RFC 7592)")


class ClientUpdated(ClientView):
    """RFC 7592 §2.2: after a self-service update, the new registration access token (the old one is dead); a new secret if asked for."""

    registration_access_token: str | SkipJsonSchema[None] = None
    client_secret: str | SkipJsonSchema[None] = None
    client_secret_expires_at: Literal[0] | SkipJsonSchema[None] = None


class ClientRegistration(ClientView):
    """RFC 7591 §3.2.1: the metadata plus the issued id, the registration access token and, for secret methods, the secret (shown once)."""

    client_id_issued_at: int
    registration_access_token: str
    client_secret: str | SkipJsonSchema[None] = None
    client_secret_expires_at: Literal[0] | SkipJsonSchema[None] = None


# --- enrolment and devices ---------------------------------------------------


class EnrolmentCreated(_Answer):
    account_id: str
    state: Literal["pending"]
    assurance: Assurance
    activation_code: str = Field(pattern=r"^[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}$", description="shown once, for the kiosk slip")
    activation_expires_at: datetime


class DeviceChallenge(_Answer):
    nonce: str
    expires_at: datetime
    audience: str = Field(description="the `aud` the proof of possession must name")


class DeviceActivated(_Answer):
    device_id: str
    account_id: str
    key_thumbprint: str = Field(description="RFC 7638 SHA-256 thumbprint of the device key")


class DeviceToken(_Answer):
    access_token: str = Field(description="RFC 9068 at+jwt bound to the device key (cnf.jkt)")
    token_type: Literal["Bearer"]
    expires_in: int
    scope: Literal["device"]


class DeviceView(_Answer):
    device_id: str
    name: str
    status: Literal["active", "revoked"]
    key_thumbprint: str
    created_at: datetime
    revoked_at: datetime | SkipJsonSchema[None] = None


class DeviceList(_Answer):
    devices: list[DeviceView]
    current_device_id: str


# --- approvals ---------------------------------------------------------------


class Prompt(_Answer):
    """One approval prompt of the citizen's queue; `request` is what `digest` is computed over."""

    approval_id: str
    status: Literal["pending", "approved", "denied", "expired"]
    action: Literal["login", "formfill", "sign", "test"]
    requester: Requester
    purpose: str
    details: dict[str, Any]
    matching_code: str | None
    expires_at: datetime
    digest: str
    request: ApprovalRequest
    decided_at: datetime | SkipJsonSchema[None] = None


class PromptList(_Answer):
    approvals: list[Prompt]


class DecisionRecorded(_Answer):
    approval_id: str
    status: Literal["approved", "denied"]
    decided_at: datetime
    redirect_to: str | SkipJsonSchema[None] = Field(
        default=None, description="login prompts from an app link: the client's redirect URI with the code (or error)"
    )


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


class PublicJWK(_Answer):
    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str
    y: str
    kid: str
    use: Literal["sig"]
    alg: Literal["ES256"]


class JWKS(_Answer):
    keys: list[PublicJWK]


class AuthorizationStatus(_Answer):
    status: Literal["pending", "approved", "denied", "expired"]
    redirect_to: str | SkipJsonSchema[None] = Field(default=None, description="where the page goes once the citizen has decided")


class PushedAuthorizationResponse(_Answer):
    request_uri: str
    expires_in: int


class TokenResponse(_Answer):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    id_token: str | SkipJsonSchema[None] = None
    refresh_token: str | SkipJsonSchema[None] = None


class BackchannelAuthenticationResponse(_Answer):
    auth_req_id: str
    expires_in: int
    interval: int


class UserInfo(_Answer):
    sub: str
    assurance_level: Assurance


class Introspection(_Answer):
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


OPERATIONS: tuple[Operation, ...] = (
    # Clients
    Operation(
        "POST", "/v1/clients", "Register a client (RFC 7591)", ("clients",),
        request_model=ClientMetadata,
        responses={201: ClientRegistration, **JSON_BODY_ERRORS,
                   401: "outside the sandbox, the admin token is required",
                   403: "sandbox registrations cannot create kiosks, ask for enrol or claim a shared sector"},
        security=("admin",), security_optional=True,
        description="Operators with the admin token; in the sandbox anyone, except kiosks, the enrol scope and sector_identifier_uri.",
    ),
    Operation(
        "GET", "/v1/clients/{client_id}", "Read a client's registration (RFC 7592 §2.1)", ("clients",),
        responses={200: ClientView,
                   401: "neither this client's registration access token nor the admin token (WWW-Authenticate: Bearer)",
                   404: "an operator asked for an unknown client"},
        security=("admin", "registrationToken"),
    ),
    Operation(
        "PUT", "/v1/clients/{client_id}", "Replace a client's metadata (RFC 7592 §2.2)", ("clients",),
        request_model=ClientUpdate,
        responses={200: ClientUpdated, **JSON_BODY_ERRORS,
                   401: "neither this client's registration access token nor the admin token (WWW-Authenticate: Bearer)",
                   403: "operator-only-metadata: the client tried to change scope, form-fill fields, redirect or callback URIs, "
                        "kind, sector or name (`fields` lists them); nothing changed",
                   404: "an operator named an unknown client",
                   409: "the kind or authentication method would change, client_id or client_secret do not match, "
                        "or a private_key_jwt client asked for a secret"},
        security=("admin", "registrationToken"),
        description="With the registration access token a client may change only its own keys (jwks, jwks_uri, encryption_jwk), "
                    "contacts and logo_uri, and ask for a new secret (rotate_client_secret); every such update rotates the "
                    "registration access token. Everything else is the operators' (admin token).",
    ),
    Operation(
        "DELETE", "/v1/clients/{client_id}", "Delete a client (RFC 7592 §2.3)", ("clients",),
        responses={204: "deleted: its secret, assertions and registration token no longer work",
                   401: "neither this client's registration access token nor the admin token (WWW-Authenticate: Bearer)",
                   404: "an operator named an unknown client"},
        security=("admin", "registrationToken"),
    ),
    # Enrolment
    Operation(
        "POST", "/v1/enrolments", "Enrol a citizen (kiosk: assurance plus; sandbox self-registration: basic)", ("enrolment",),
        request_model=EnrolmentRequest,
        responses={201: EnrolmentCreated, **JSON_BODY_ERRORS,
                   401: "wrong kiosk credentials, or none outside the sandbox (WWW-Authenticate: Basic)",
                   403: "insufficient-scope: the client is not a kiosk with the enrol scope",
                   409: "duplicate-enrolment: the card number is already enrolled",
                   413: "the body is above 4 MiB",
                   422: "validation-failed (`errors` names each field), selfie-rejected or proofing-failed"},
        security=("kioskBasic",), security_optional=True,
    ),
    # Devices
    Operation(
        "POST", "/v1/devices/challenges", "A single-use nonce for a device's proof of possession", ("devices",),
        responses={201: DeviceChallenge},
    ),
    Operation(
        "POST", "/v1/devices", "Bind a citizen's first device with the activation code", ("devices",),
        request_model=ActivationRequest,
        responses={201: DeviceActivated, **JSON_BODY_ERRORS,
                   400: "malformed body, invalid-key, invalid-proof, invalid-nonce, invalid-activation (with attempts_left), used or expired",
                   403: "locked after too many wrong codes, or account-inactive"},
    ),
    Operation(
        "POST", "/v1/devices/token", "Exchange a device-signed assertion for a device token", ("devices",),
        request_model=DeviceTokenRequest,
        responses={200: DeviceToken, **JSON_BODY_ERRORS,
                   401: "invalid-assertion, replayed-assertion or device-inactive",
                   403: "account-inactive"},
    ),
    Operation(
        "GET", "/v1/devices", "The account's devices", ("devices",),
        responses={200: DeviceList, **DEVICE_AUTH_ERRORS}, security=("deviceToken",),
    ),
    Operation(
        "DELETE", "/v1/devices/{device_id}", "Revoke a device of the account (this one or another)", ("devices",),
        responses={204: None, **DEVICE_AUTH_ERRORS, 404: "no such active device on this account"}, security=("deviceToken",),
    ),
    # Approvals
    Operation(
        "GET", "/v1/approvals", "The pending prompts of the account, soonest expiry first", ("approvals",),
        responses={200: PromptList, **DEVICE_AUTH_ERRORS}, security=("deviceToken",),
    ),
    Operation(
        "GET", "/v1/approvals/{approval_id}", "One prompt of the account, any status", ("approvals",),
        responses={200: Prompt, **DEVICE_AUTH_ERRORS, 404: "not this account's prompt"}, security=("deviceToken",),
    ),
    Operation(
        "POST", "/v1/approvals/{approval_id}/decision", "Approve or deny a prompt with a device-signed decision", ("approvals",),
        request_model=DecisionRequest,
        responses={200: DecisionRecorded, **JSON_BODY_ERRORS, **DEVICE_AUTH_ERRORS,
                   400: "malformed body or decision",
                   403: "account-inactive, wrong-device, bad-signature, digest-mismatch, wrong-approval or assurance-too-low",
                   404: "not this account's prompt",
                   409: "already-decided (a replay too)",
                   410: "the prompt has expired"},
        security=("deviceToken",),
    ),
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

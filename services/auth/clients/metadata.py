"""What a client declares: its registration metadata (RFC 7591 names where one exists) and who may change which part.

Harbour ID adds its own members (`kind`, `formfill_fields`, `callback_urls`,
`encryption_jwk`, `agency_events`). A client changes only the metadata that is its own
business (`SELF_SERVICE_FIELDS`: its keys, contacts, logo); what decides what
it may do or what citizens see (`OPERATOR_ONLY_FIELDS`: scopes, form-fill
fields, redirect and callback URIs, kind, sector, its name, whether it gets
its own event topic) only an operator changes.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from libs.outbound import check_url
from libs.service.validation import DisplayText
from libs.tokens import InvalidKey, load_public_jwk, load_public_rsa_jwk

from ..oidc import fapi

ClientKind = Literal["relying_party", "agency", "kiosk"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
SCOPES = frozenset({"openid", "profile", "email", "phone", "address", "formfill", "sign", "notify", "activity", "enrol", "offline_access"})
FORMFILL_FIELDS = frozenset(
    {"id_number", "name_en", "name_zh", "date_of_birth", "gender", "phone", "email", "address"}
)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def check_redirect_uri(uri: str) -> str:
    """Absolute https URIs (http only on loopback), no fragment (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URI")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("must use https (http only on loopback)")
    if parts.fragment or "#" in uri:
        raise ValueError("must not contain a fragment")
    return uri


class ClientMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    client_name: DisplayText = Field(min_length=1, max_length=100)
    kind: ClientKind = "relying_party"
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = Field(default=None, max_length=500)
    scope: str = Field(default="openid", max_length=500, description="space-separated scopes the client may ask for")
    formfill_fields: list[str] = Field(default_factory=list, max_length=len(FORMFILL_FIELDS))
    sector_identifier_uri: str | None = Field(default=None, max_length=500)
    callback_urls: list[str] = Field(default_factory=list, max_length=10)
    encryption_jwk: dict[str, Any] | None = None
    contacts: list[str] = Field(default_factory=list, max_length=5, description="e-mail addresses of the people responsible for the client")
    logo_uri: str | None = Field(default=None, max_length=500)
    # RFC 9101 §10.5: this client's authorization requests only as request objects it signed (oidc/request_objects.py).
    require_signed_request_object: StrictBool = Field(default=False, description="JAR (RFC 9101 §10.5): an authorization "
                                                      "request not sent as a signed request object is refused")
    # OpenID Connect Back-Channel Logout 1.0 §2.2: where the platform POSTs logout tokens (oidc/backchannel.py), and
    # whether the client needs `sid` in them (it always gets one: every login here has a session id).
    backchannel_logout_uri: str | None = Field(default=None, max_length=500, description="https, a public host (http://127.0.0.1 "
                                               "in the sandbox): receives logout tokens when the citizen's session ends")
    backchannel_logout_session_required: StrictBool = False
    # Whether the platform writes copies of this client's outcomes to its own topic `agency.<client_id>.events`
    # (docs/events.md). Off unless asked for: a topic, a broker write and an outbox document per event, for nothing,
    # when nobody reads it; in production the topic and its ACL come with the agency's onboarding (deploy/k8s).
    agency_events: StrictBool = Field(default=False, description="publish this client's logins, consents, signatures and "
                                      "notification statuses on its own Kafka topic agency.<client_id>.events")

    # RFC 9449 §5.2: every token request of this client must carry a DPoP proof (its access tokens are all DPoP-bound).
    dpop_bound_access_tokens: StrictBool = Field(default=False, description="DPoP (RFC 9449 §5.2): token requests "
                                                 "without a DPoP proof are refused")
    # RFC 9126 §6: this client's authorization requests only through PAR (oidc/fapi.py); the FAPI profile implies it.
    require_pushed_authorization_requests: StrictBool = Field(default=False, description="PAR (RFC 9126 §6): a plain "
                                                              "authorization request is refused with invalid_request")
    # FAPI 2.0 Security Profile (oidc/fapi.py): PAR, private_key_jwt, DPoP-bound tokens, codes of 60 s at most.
    fapi_profile: Literal["fapi2-security"] | None = Field(default=None, description="fapi2-security: the FAPI 2.0 "
                                                           "Security Profile's rules for this client (docs/api.md)")

    @field_validator("contacts")
    @classmethod
    def _contacts(cls, values: list[str]) -> list[str]:
        for value in values:
            if len(value) > 254 or not re.fullmatch(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+", value):
                raise ValueError("contacts must be e-mail addresses")
        return values

    @field_validator("redirect_uris", "post_logout_redirect_uris", "callback_urls")
    @classmethod
    def _uris(cls, values: list[str]) -> list[str]:
        return [check_redirect_uri(v) for v in values]

    @field_validator("callback_urls", "jwks_uri", "backchannel_logout_uri")
    @classmethod
    def _outbound(cls, value: list[str] | str | None) -> list[str] | str | None:
        # URLs the platform itself calls or fetches: SSRF rules (libs/outbound), checked again at connection time.
        if value is None:
            return None
        return [check_url(v) for v in value] if isinstance(value, list) else check_url(value)

    @field_validator("scope")
    @classmethod
    def _scopes(cls, value: str) -> str:
        unknown = set(value.split()) - SCOPES
        if unknown:
            raise ValueError(f"unknown scopes: {' '.join(sorted(unknown))}")
        return " ".join(sorted(set(value.split())))

    @field_validator("formfill_fields")
    @classmethod
    def _fields(cls, values: list[str]) -> list[str]:
        unknown = set(values) - FORMFILL_FIELDS
        if unknown:
            raise ValueError(f"unknown form-fill fields: {' '.join(sorted(unknown))}")
        return sorted(set(values))

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, value: dict | None) -> dict | None:
        if value is None:
            return None
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys or len(keys) > 10:
            raise ValueError("jwks must hold 1 to 10 keys")
        for key in keys:
            if not isinstance(key, dict):
                raise ValueError("jwks: every key must be a JWK object")
            try:
                if key.get("kty") == "RSA":  # PS256, for signed request objects only (oidc/request_objects.py)
                    load_public_rsa_jwk(key)
                else:
                    load_public_jwk({k: v for k, v in key.items() if k in ("kty", "crv", "x", "y", "d")})
            except InvalidKey as exc:
                raise ValueError(f"jwks: {exc}") from None
        return value

    @field_validator("encryption_jwk")
    @classmethod
    def _encryption_jwk(cls, value: dict | None) -> dict | None:
        if value is not None:
            try:
                load_public_jwk({k: v for k, v in value.items() if k in ("kty", "crv", "x", "y", "d")})
            except InvalidKey as exc:
                raise ValueError(f"encryption_jwk: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ClientMetadata":
        if self.kind == "relying_party" and "openid" in self.scope.split() and not self.redirect_uris:
            raise ValueError("a relying party that logs citizens in needs redirect_uris")
        if self.token_endpoint_auth_method == "private_key_jwt" and not (self.jwks or self.jwks_uri):
            raise ValueError("private_key_jwt needs jwks or jwks_uri")
        if self.token_endpoint_auth_method == "private_key_jwt" and self.jwks and all(k.get("kty") == "RSA" for k in self.jwks["keys"]):
            # RSA keys verify PS256 request objects only: a client assertion is ES256 (client_auth.py).
            raise ValueError("private_key_jwt needs a P-256 key in jwks (client assertions are ES256)")
        if self.require_signed_request_object and not (self.jwks or self.jwks_uri):
            raise ValueError("require_signed_request_object needs jwks or jwks_uri (the keys request objects are signed with)")
        if self.jwks_uri is not None:
            check_redirect_uri(self.jwks_uri)
        if self.sector_identifier_uri is not None:
            check_redirect_uri(self.sector_identifier_uri)
        if self.logo_uri is not None:
            check_redirect_uri(self.logo_uri)
        if self.backchannel_logout_uri is not None:
            check_redirect_uri(self.backchannel_logout_uri)  # and no fragment (Back-Channel Logout §2.2)
        if self.backchannel_logout_session_required and not self.backchannel_logout_uri:
            raise ValueError("backchannel_logout_session_required needs a backchannel_logout_uri")
        if fapi_problem := fapi.registration_problem(self):
            raise ValueError(fapi_problem)
        return self


# RFC 7592 self-service: what a client may change with its registration access token (plus a new secret)...
SELF_SERVICE_FIELDS = ("jwks", "jwks_uri", "encryption_jwk", "contacts", "logo_uri", "dpop_bound_access_tokens",
                       "require_pushed_authorization_requests", "require_signed_request_object")
# ...and what only an operator may change: what the client may ask for, where citizens and their data go, what they read.
OPERATOR_ONLY_FIELDS = ("client_name", "kind", "scope", "formfill_fields", "redirect_uris", "post_logout_redirect_uris",
                        "callback_urls", "sector_identifier_uri", "agency_events", "backchannel_logout_uri",
                        "backchannel_logout_session_required", "fapi_profile")
# Nobody changes these: a client with another authentication method is another client.
FIXED_FIELDS = ("token_endpoint_auth_method",)


class ClientUpdate(ClientMetadata):
    __doc__ = """RFC 7592 §2.2: the whole metadata again (an omitted member means its default), with the client's id."""

    client_id: str | None = Field(default=None, max_length=100, description="if sent, this client's id (RFC 7592 §2.2)")
    client_secret: str | None = Field(default=None, max_length=200, repr=False,
                                      description="if sent, the current secret: a client never chooses its secret")
    rotate_client_secret: bool = Field(default=False, description="issue a new client secret (shown once in the answer); the old one stops working")

    def metadata(self) -> ClientMetadata:
        return ClientMetadata.model_validate(self.model_dump(include=set(ClientMetadata.model_fields)))


def operator_only_changes(current: ClientMetadata, wanted: ClientMetadata) -> list[str]:
    before, after = current.model_dump(mode="json"), wanted.model_dump(mode="json")
    return [name for name in OPERATOR_ONLY_FIELDS if before[name] != after[name]]

"""What the OpenID Connect endpoints answer in JSON: the domain returns these, the OpenAPI document shows them.

Members a standard leaves out when they do not apply (an ID token without
`openid`, a refresh token without `offline_access`, an inactive token's
details) are left out of the answer rather than sent as null, which
`SkipJsonSchema[None]` expresses and the endpoints' `exclude_none` does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from ..identity.enrolment import Assurance
from ..views import Answer


class ProviderMetadata(BaseModel):
    __doc__ = """OpenID Connect Discovery 1.0 metadata; the members beyond these are listed by the document itself."""

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


class LoginQr(Answer):
    __doc__ = """The login page's QR code in this second of the login (asked with `qr=1`): it changes every second. The page
    draws it from the link (error level M, mask 0: templates/qr_code.js)."""

    link: str = Field(description="what the QR code says: {issuer}/app/authorize?tx=…&t=…&c=… (t: seconds since the "
                                  "login started; c: auth's HMAC of tx and t)")
    t: int


class AuthorizationStatus(Answer):
    status: Literal["pending", "approved", "denied", "expired"]
    redirect_to: str | SkipJsonSchema[None] = Field(default=None, description="where the page goes once the citizen has decided")
    qr: LoginQr | SkipJsonSchema[None] = Field(default=None, description="while pending, when asked (qr=1): this second's QR code")


class PushedAuthorizationResponse(Answer):
    request_uri: str
    expires_in: int


class TokenResponse(Answer):
    access_token: str
    token_type: Literal["Bearer", "DPoP"]
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
    __doc__ = """RFC 7662: `{"active": false}` for anything that is not an active token of the calling client."""

    active: bool
    token_type: Literal["Bearer", "DPoP", "refresh_token"] | SkipJsonSchema[None] = None
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
    cnf: dict[str, str] | SkipJsonSchema[None] = Field(default=None, description="a DPoP-bound token's key: {\"jkt\"} (RFC 9449 §6.2)")

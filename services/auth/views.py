"""What auth's API answers (accounts, devices, approvals, clients), as the models its endpoints declare (endpoints/).

The handlers build these answers as JSON themselves; the models describe
them exactly for the OpenAPI document, and the schemathesis run in
tests/e2e/test_openapi_schemathesis.py catches a drift. Optional members
are left out of the answer rather than sent as null, which
`SkipJsonSchema[None]` expresses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from libs.approvals import ApprovalRequest, Requester

from .clients.metadata import AuthMethod, ClientKind
from .identity.enrolment import Assurance


def _absent_not_null(schema: dict[str, Any]) -> None:
    """Members that are left out rather than sent as null have no `default: null` either."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_absent_not_null)


# --- clients -----------------------------------------------------------------


class ClientView(Answer):
    __doc__ = """A registered client's metadata (never its secret or registration token); RFC 7592 §3."""

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
    require_signed_request_object: bool = Field(default=False, description="RFC 9101 §10.5: the client's authorization "
                                                "requests must be signed request objects")
    agency_events: bool = Field(description="whether the client's outcomes are published on its own topic agency.<client_id>.events")
    dpop_bound_access_tokens: bool = Field(default=False, description="RFC 9449 §5.2: the client's token requests must carry a DPoP proof")
    require_pushed_authorization_requests: bool = Field(default=False, description="RFC 9126 §6: the client's authorization "
                                                        "requests only through PAR")
    fapi_profile: Literal["fapi2-security"] | SkipJsonSchema[None] = Field(default=None, description="FAPI 2.0 Security "
                                                                         "Profile: PAR, private_key_jwt, DPoP (docs/api.md)")
    backchannel_logout_uri: str | SkipJsonSchema[None] = Field(default=None, description="OpenID Connect Back-Channel Logout "
                                                               "1.0 §2.2: where logout tokens are POSTed")
    backchannel_logout_session_required: bool = Field(default=False, description="Back-Channel Logout §2.2 (the tokens "
                                                      "carry sid always)")
    registration_client_uri: str = Field(description="where the client reads, updates and deletes its registration (RFC 7592)")


class ClientUpdated(ClientView):
    __doc__ = """RFC 7592 §2.2: after a self-service update, the new registration access token (the old one is dead); a new secret if asked for."""

    registration_access_token: str | SkipJsonSchema[None] = None
    client_secret: str | SkipJsonSchema[None] = None
    client_secret_expires_at: Literal[0] | SkipJsonSchema[None] = None


class ClientRegistration(ClientView):
    __doc__ = """RFC 7591 §3.2.1: the metadata plus the issued id, the registration access token and, for secret methods, the secret (shown once)."""

    client_id_issued_at: int
    registration_access_token: str
    client_secret: str | SkipJsonSchema[None] = None
    client_secret_expires_at: Literal[0] | SkipJsonSchema[None] = None


# --- enrolment and devices ---------------------------------------------------


class EnrolmentCreated(Answer):
    account_id: str
    state: Literal["pending"]
    assurance: Assurance
    activation_code: str = Field(pattern=r"^[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}$", description="shown once, for the kiosk slip")
    activation_expires_at: datetime


class PhoneReplaced(Answer):
    __doc__ = """A kiosk replacement: the same account with a new activation code; every old device revoked."""

    account_id: str
    state: Literal["pending", "active"]
    assurance: Literal["plus"]
    activation_code: str = Field(pattern=r"^[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}$", description="shown once, for the kiosk slip")
    activation_expires_at: datetime
    devices_revoked: int = Field(ge=0)
    upgraded: bool = Field(description="the account was basic and is plus from now on (the proofing was in person)")


class PhoneRecovered(Answer):
    __doc__ = """The sandbox's self-service recovery: the same account with a new activation code; every old device revoked."""

    account_id: str
    state: Literal["pending", "active"]
    assurance: Literal["basic", "plus"] = Field(description="unchanged: nobody saw the citizen")
    activation_code: str = Field(pattern=r"^[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}$", description="shown once")
    activation_expires_at: datetime
    devices_revoked: int = Field(ge=0)
    upgraded: Literal[False] = False


class AssuranceUpgraded(Answer):
    account_id: str
    state: Literal["pending", "active"]
    assurance: Literal["plus"]
    upgraded: bool = Field(description="false when the account was plus already (nothing changed)")


class DeviceChallenge(Answer):
    nonce: str
    expires_at: datetime
    audience: str = Field(description="the `aud` the proof of possession must name")


class DeviceActivated(Answer):
    device_id: str
    account_id: str
    key_thumbprint: str = Field(description="RFC 7638 SHA-256 thumbprint of the device key")


class DeviceToken(Answer):
    access_token: str = Field(description="RFC 9068 at+jwt bound to the device key (cnf.jkt)")
    token_type: Literal["Bearer"]
    expires_in: int
    scope: Literal["device"]


class PairingStarted(Answer):
    pairing_id: str = Field(description="the new phone's own handle on the pairing, for polling it (keep it private)")
    code: str = Field(description="what the new phone shows, XXXX-XXXX; the citizen enters it on a phone already bound")
    status: Literal["waiting"]
    expires_at: datetime
    key_thumbprint: str = Field(description="RFC 7638 thumbprint of the key the pairing is bound to")


class PairingView(Answer):
    pairing_id: str
    status: Literal["waiting", "claimed", "bound", "denied", "expired"]
    expires_at: datetime
    device_name: str
    key_thumbprint: str
    matching_code: str | SkipJsonSchema[None] = Field(
        default=None, description="once claimed: the 4 digits the old phone's prompt shows too, for the citizen to compare")
    device_id: str | SkipJsonSchema[None] = Field(default=None, description="once bound: the new device's id")
    account_id: str | SkipJsonSchema[None] = Field(default=None, description="once bound: the account it joined")


class PairingClaimed(Answer):
    approval_id: str = Field(description="the add_device prompt on this account's queue, for a device to approve")
    status: Literal["pending"]
    expires_at: datetime
    device_name: str
    key_thumbprint: str
    matching_code: str = Field(description="also shown by the new phone: the citizen checks both screens agree")


class DeviceView(Answer):
    device_id: str
    name: str
    status: Literal["active", "revoked"]
    key_thumbprint: str
    created_at: datetime
    revoked_at: datetime | SkipJsonSchema[None] = None
    key_storage: Literal["software"] = Field(description="where the key is kept, as registered (no hardware key is accepted)")
    user_verification: Literal["pin", "passkey", "none"] = Field(
        description="pin: the app asks the PIN before every signature; passkey: each approval is verified by the "
                    "device's passkey (WebAuthn, user verification)")


class DeviceList(Answer):
    devices: list[DeviceView]
    current_device_id: str


class ClosureRequested(Answer):
    approval_id: str = Field(description="the closure prompt, waiting on the account's own queue for the phone's decision")
    status: Literal["pending"]
    expires_at: datetime


# --- approvals ---------------------------------------------------------------


class Prompt(Answer):
    __doc__ = """One approval prompt of the citizen's queue; `request` is what `digest` is computed over."""

    approval_id: str
    status: Literal["pending", "approved", "denied", "expired"]
    action: Literal["login", "formfill", "sign", "close_account", "add_device", "test"]
    requester: Requester
    purpose: str
    details: dict[str, Any]
    matching_code: str | None
    expires_at: datetime
    digest: str
    request: ApprovalRequest
    decided_at: datetime | SkipJsonSchema[None] = None


class PromptList(Answer):
    approvals: list[Prompt]


class DecisionRecorded(Answer):
    approval_id: str
    status: Literal["approved", "denied"]
    decided_at: datetime
    account_state: Literal["closed"] | SkipJsonSchema[None] = Field(
        default=None, description="a closure prompt approved: the account is closed (identity/closure.py)")
    redirect_to: str | SkipJsonSchema[None] = Field(
        default=None, description="login prompts from an app link: the client's redirect URI with the code (or error)"
    )

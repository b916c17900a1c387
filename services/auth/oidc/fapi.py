"""FAPI 2.0 Security Profile per client (issue 20): what a client registered with `fapi_profile: "fapi2-security"` must do.

Pure checks, called from the endpoints with the client in hand. Most of the
profile is what every client here already does — PKCE S256, response_type
code only, response_mode query or form_post, exactly registered redirect URIs
(https, http only on loopback), `iss` in every authorization response (RFC
9207) — and these are what a FAPI client adds:

- PAR only (RFC 9126 §6: `require_pushed_authorization_requests`, which any
  client may register on its own): a plain authorization request is refused;
- `private_key_jwt` only: registered so (a client authenticates only with its
  registered method, and that method is fixed), so a client secret is refused
  as `invalid_client` at PAR and at the token endpoint;
- DPoP-bound tokens (RFC 9449 §5.2, as `dpop_bound_access_tokens`): a token
  request without a proof is `invalid_dpop_proof`, and proofs carry a server
  nonce unless HARBOUR_AUTH_DPOP_NONCE is `off`;
- client assertions with `aud` = the issuer identifier, a string (not an
  endpoint URL, not a list);
- authorization codes redeemable for 60 s at most, whatever the code lifetime;
- outside the sandbox, https redirect URIs only (no loopback http).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import InvalidClient, InvalidRequest

if TYPE_CHECKING:
    from ..clients.registry import Client

FAPI2_SECURITY = "fapi2-security"
PROFILES = (FAPI2_SECURITY,)
MAX_CODE_LIFETIME_S = 60


def is_fapi(metadata: Any) -> bool:
    return getattr(metadata, "fapi_profile", None) == FAPI2_SECURITY


def requires_par(client: "Client") -> bool:
    """RFC 9126 §6 per client: the registration's own flag, or the FAPI profile."""
    return bool(client.metadata.require_pushed_authorization_requests) or is_fapi(client.metadata)


def requires_dpop(client: "Client") -> bool:
    """RFC 9449 §5.2 per client: `dpop_bound_access_tokens`, or the FAPI profile."""
    return bool(client.metadata.dpop_bound_access_tokens) or is_fapi(client.metadata)


def check_plain_request(client: "Client | None", pushed: bool) -> None:
    """An authorization request that did not come through PAR, from a client that must push its requests."""
    if client is not None and not pushed and requires_par(client):
        raise InvalidRequest("PAR required: this client must push its authorization requests to the "
                             "pushed_authorization_request_endpoint (RFC 9126 §6)")


def check_assertion_audience(client: "Client", aud: Any, issuer: str) -> None:
    """A FAPI client's client assertion names the issuer alone, as a string (not the endpoint, not a list), so an
    assertion made for another server (or another endpoint's audience) cannot be replayed here."""
    if is_fapi(client.metadata) and aud != issuer:
        raise InvalidClient("a FAPI client's assertion must have aud = the issuer identifier, as a string")


def code_expires_at(client: "Client", expires_at: datetime, code_ttl_s: int) -> datetime:
    """When a code issued to `client` stops being redeemable: its own expiry, and for FAPI 60 s after it was issued."""
    if not is_fapi(client.metadata) or code_ttl_s <= MAX_CODE_LIFETIME_S:
        return expires_at
    return expires_at - timedelta(seconds=code_ttl_s - MAX_CODE_LIFETIME_S)


def production_problem(metadata: Any) -> str | None:
    """Outside the sandbox a FAPI client's redirect URIs are https only (loopback http is for the sandbox)."""
    if is_fapi(metadata) and any(not uri.startswith("https://") for uri in metadata.redirect_uris):
        return "fapi_profile fapi2-security needs https redirect_uris (http on loopback only in the sandbox)"
    return None


def registration_problem(metadata: Any) -> str | None:
    """Why a registration cannot hold the FAPI profile (None: it can). The metadata's own validator raises it."""
    if not is_fapi(metadata):
        return None
    if metadata.token_endpoint_auth_method != "private_key_jwt":
        return "fapi_profile fapi2-security needs token_endpoint_auth_method private_key_jwt"
    if not (metadata.jwks or metadata.jwks_uri):
        return "fapi_profile fapi2-security needs jwks or jwks_uri (private_key_jwt)"
    return None

"""Caller authentication, written once for every Harbour ID process.

- authorization.py: the `Authorization` header (Bearer, Basic) and the one `WWW-Authenticate` challenge builder;
- refusals.py: the 401s with their challenge and 403 insufficient-scope;
- verification.py: a bearer token's claims — auth's JWKS, type, audience, expiry, revocation list, scopes;
- parties.py: who calls a resource service — a relying party or a citizen's device — and `caller_of`, which
  makes a check an endpoint's `caller` (libs/service/endpoints.py).

The gateway's edge (services/gateway/edge.py) and the resource services
(services/*/callers.py) use the same checks; auth, the issuer, uses the header
parsing and challenges around its own verification.
"""

from .authorization import REALM, access_token_of, basic_credentials, bearer_token, challenge
from .parties import Device, RelyingParty, caller_of, device, relying_party
from .refusals import (
    ACCESS_TOKEN_REFUSALS,
    DEVICE_TOKEN_REFUSALS,
    ClientCredentialsRequired,
    InsufficientScope,
    InvalidAccessToken,
    InvalidDPoPProof,
    InvalidDPoPToken,
    RevocationsLoading,
    RevocationsNotFollowed,
    TokenRequired,
)
from .verification import (access_token_claims, check_sender, device_token_claims, require_scopes, revocation_refusal,
                           verified_claims)

__all__ = [
    "ACCESS_TOKEN_REFUSALS",
    "DEVICE_TOKEN_REFUSALS",
    "REALM",
    "ClientCredentialsRequired",
    "Device",
    "InsufficientScope",
    "InvalidAccessToken",
    "InvalidDPoPProof",
    "InvalidDPoPToken",
    "RelyingParty",
    "RevocationsLoading",
    "RevocationsNotFollowed",
    "TokenRequired",
    "access_token_claims",
    "access_token_of",
    "basic_credentials",
    "bearer_token",
    "caller_of",
    "challenge",
    "check_sender",
    "device",
    "device_token_claims",
    "relying_party",
    "require_scopes",
    "revocation_refusal",
    "verified_claims",
]

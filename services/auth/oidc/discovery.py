"""OpenID Connect Discovery 1.0 (and RFC 8414): the provider metadata at /.well-known/openid-configuration."""

from __future__ import annotations

from libs.tokens.dpop import ALGORITHMS as DPOP_ALGORITHMS

from .fapi import PROFILES as FAPI_PROFILES
from .tokens import ACR_BASIC, ACR_PLUS
from .views import ProviderMetadata

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


def endpoints(issuer: str) -> dict[str, str]:
    return {
        "authorization_endpoint": f"{issuer}/oidc/authorize",
        "token_endpoint": f"{issuer}/oidc/token",
        "userinfo_endpoint": f"{issuer}/oidc/userinfo",
        "jwks_uri": f"{issuer}/oidc/jwks",
        "pushed_authorization_request_endpoint": f"{issuer}/oidc/par",
        "backchannel_authentication_endpoint": f"{issuer}/oidc/bc-authorize",
        "revocation_endpoint": f"{issuer}/oidc/revoke",
        "introspection_endpoint": f"{issuer}/oidc/introspect",
        "end_session_endpoint": f"{issuer}/oidc/logout",
        "registration_endpoint": f"{issuer}/v1/clients",
    }


def provider_metadata(issuer: str) -> ProviderMetadata:
    return ProviderMetadata(**{
        "issuer": issuer,
        **endpoints(issuer),
        "scopes_supported": ["openid", "offline_access", "formfill", "sign", "notify", "activity"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", CIBA_GRANT],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),  # RFC 9449 §5.1
        "acr_values_supported": [ACR_BASIC, ACR_PLUS],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash", "azp", "assurance_level"],
        "claims_parameter_supported": False,
        "request_parameter_supported": True,  # signed request objects (RFC 9101, request_objects.py)
        "request_object_signing_alg_values_supported": ["ES256", "PS256"],
        "require_signed_request_object": False,  # per client: its registration's require_signed_request_object
        "request_uri_parameter_supported": True,
        "require_pushed_authorization_requests": False,
        "authorization_response_iss_parameter_supported": True,
        # Per client (fapi.py): the registration's fapi_profile; its PAR and DPoP duties are the registration's too.
        "fapi_profiles_supported": list(FAPI_PROFILES),
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "ui_locales_supported": ["en", "zh-HK"],
        "prompt_values_supported": ["none", "login", "consent"],
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,  # oidc/backchannel.py
        "backchannel_logout_session_supported": True,
    })

"""Tokens: ES256 compact JWS signing and strict verification, P-256 JWKs and thumbprints, the kinds auth issues."""

from .jwks_cache import JWKSCache, JWKSUnavailable
from .jwk import InvalidKey, generate_private_key, load_public_jwk, load_public_rsa_jwk, public_jwk, thumbprint
from .jws import InvalidToken, sign, unverified_header, verify
from .kinds import ACCESS_TOKEN_TYP, DEVICE_AUDIENCE

__all__ = [
    "ACCESS_TOKEN_TYP",
    "DEVICE_AUDIENCE",
    "InvalidKey",
    "JWKSCache",
    "JWKSUnavailable",
    "InvalidToken",
    "generate_private_key",
    "load_public_jwk",
    "load_public_rsa_jwk",
    "public_jwk",
    "sign",
    "thumbprint",
    "unverified_header",
    "verify",
]

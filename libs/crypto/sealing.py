"""Sealing a JSON payload to one recipient service, so personal data can cross Kafka.

A sealed payload is a compact JWE (ECDH-ES+A256KW, A256GCM) to the recipient's
P-256 public key: the publisher, the broker and every other consumer see only
ciphertext. `unseal` accepts exactly that pair of algorithms and nothing else
(no compression, no other key management), and turns every failure into
`SealError`, so a consumer can treat a bad message as poison in one place.

joserfc is loaded by the first seal or unseal, not when a service starts (docs/operations.md, idle RSS).
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidKey, InvalidTag, UnsupportedAlgorithm

if TYPE_CHECKING:
    from joserfc.jwe import JWERegistry
    from joserfc.jwk import ECKey

ALG = "ECDH-ES+A256KW"
ENC = "A256GCM"
CURVE = "P-256"
CONTENT_TYPE = "application/json"

# joserfc refuses, on decryption only, a ciphertext segment over 64 KiB of
# base64url (jwe.JWERegistry.max_ciphertext_length, checked by tests/unit/test_crypto.py);
# refusing larger payloads when sealing keeps every token we make one our consumers can open.
MAX_CIPHERTEXT_LENGTH = 65536
MAX_PAYLOAD_BYTES = MAX_CIPHERTEXT_LENGTH * 3 // 4


@cache
def _registry() -> JWERegistry:
    """The allow list covers "alg", "enc" and "zip" alike, so "zip" is refused too."""
    from joserfc import jwe

    return jwe.JWERegistry(algorithms=[ALG, ENC])


class SealError(Exception):
    """A sealed payload could not be opened: wrong key, tampered, wrong algorithms, or malformed."""


def generate_sealing_key() -> dict[str, Any]:
    """A new private P-256 JWK whose "kid" is its RFC 7638 thumbprint."""
    from joserfc.jwk import ECKey

    key = ECKey.generate_key(CURVE, parameters={"use": "enc", "alg": ALG})
    return key.as_dict(private=True, kid=key.thumbprint())


def public_jwk(private_jwk: dict[str, Any]) -> dict[str, Any]:
    """The public half to publish to senders; never contains "d"."""
    key = _import_ec(private_jwk)
    public = key.as_dict(private=False)
    public.pop("d", None)
    return public


def seal(payload: dict[str, Any], recipient_public_jwk: dict[str, Any]) -> str:
    """Encrypt `payload` so that only the holder of the recipient's private key can read it."""
    from joserfc import jwe

    key = _import_ec(recipient_public_jwk)
    plaintext = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)
    data = plaintext.encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload is {len(data)} bytes; at most {MAX_PAYLOAD_BYTES} can be sealed")
    protected = {"alg": ALG, "enc": ENC, "kid": _kid(key), "cty": CONTENT_TYPE}
    return jwe.encrypt_compact(protected, data, key, registry=_registry())


def seal_jwt(token: str, recipient_public_jwk: dict[str, Any]) -> str:
    """A nested JWT (RFC 7519 §5.2): a signed compact JWS, encrypted to the recipient (`cty: JWT`)."""
    from joserfc import jwe

    key = _import_ec(recipient_public_jwk)
    protected = {"alg": ALG, "enc": ENC, "kid": _kid(key), "cty": "JWT"}
    return jwe.encrypt_compact(protected, token.encode("ascii"), key, registry=_registry())


def unseal(token: str, private_jwk: dict[str, Any]) -> dict[str, Any]:
    """Decrypt a token from `seal` (or any JWE of exactly ECDH-ES+A256KW / A256GCM to our key)."""
    from joserfc import jwe
    from joserfc.errors import JoseError

    key = _import_ec(private_jwk)
    if not key.is_private:
        raise ValueError("unseal needs the private key")
    try:
        result = jwe.decrypt_compact(token, key, registry=_registry())
        header = result.protected
        # The registry already refuses other algorithms; checked again so that
        # a change of registry can never widen what we accept.
        if header.get("alg") != ALG or header.get("enc") != ENC:
            raise SealError("token does not use ECDH-ES+A256KW with A256GCM")
        payload = json.loads(result.plaintext or b"")
    except SealError:
        raise
    except (JoseError, ValueError, TypeError, KeyError, AssertionError, InvalidTag, InvalidKey, UnsupportedAlgorithm) as exc:
        # ValueError covers malformed base64, JSON and UTF-8; AssertionError,
        # joserfc's own checks of required header parts.
        raise SealError(f"cannot unseal token: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise SealError("sealed payload is not a JSON object")
    return payload


def _import_ec(jwk: dict[str, Any]) -> ECKey:
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey

    try:
        key = ECKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a usable EC JWK: {type(exc).__name__}") from None
    if key.curve_name != CURVE:
        raise ValueError(f"sealing keys must be on {CURVE}")
    return key


def _kid(key: ECKey) -> str:
    return key.kid or key.thumbprint()

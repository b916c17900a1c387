"""EC P-256 JSON Web Keys: import, export and RFC 7638 thumbprints.

Device keys and token-signing keys are all P-256 (the platform signs and accepts ES256 only),
so this module accepts nothing else — but a client's RSA key (`load_public_rsa_jwk`, 2048 bits or more),
which only ever verifies that client's PS256 request objects (JAR, services/auth/oidc/request_objects.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from libs import base64url


MIN_RSA_BITS = 2048


class InvalidKey(ValueError):
    pass


def public_jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    return {k: jwk[k] for k in ("kty", "crv", "x", "y")}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an EC public key, base64url."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64url.encode(hashlib.sha256(canonical).digest())


def load_public_jwk(jwk: Any) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from an untrusted JWK; anything else (private parts, other curves) is refused."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise InvalidKey("the key must be an EC P-256 JWK")
    if "d" in jwk:
        raise InvalidKey("the key must not contain private parts")
    if not all(isinstance(jwk.get(k), str) for k in ("x", "y")):
        raise InvalidKey("the key needs x and y coordinates")
    try:
        key = ECAlgorithm.from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")})
    except Exception:
        raise InvalidKey("the key is not a valid P-256 point") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidKey("the key must be a public key")
    return key


def load_public_rsa_jwk(jwk: Any) -> rsa.RSAPublicKey:
    """An RSA public key of at least MIN_RSA_BITS from an untrusted JWK (a client's PS256 key, JAR); private parts refused."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
        raise InvalidKey("the key must be an RSA JWK")
    if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi", "oth")):
        raise InvalidKey("the key must not contain private parts")
    if not all(isinstance(jwk.get(k), str) for k in ("n", "e")):
        raise InvalidKey("the key needs n and e")
    try:
        key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
    except Exception:
        raise InvalidKey("the key is not a valid RSA key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise InvalidKey(f"the RSA key must have at least {MIN_RSA_BITS} bits")
    return key


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())

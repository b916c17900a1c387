"""Compact JWS with ES256 and nothing else: signing and strict verification.

Every verification pins the algorithm to ES256 (no `none`, no HS*), requires
the claims the caller names and checks `aud`/`exp`/`nbf`/`iat` through PyJWT
— against the wall clock, or against the instant `now=` names (a decision
judged at the time auth recorded it, not when it is processed).
"""

from __future__ import annotations

import base64
import json
from calendar import timegm
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ALGORITHM = "ES256"
LEEWAY_S = 30


class InvalidToken(ValueError):
    """The token is malformed, forged, expired or not meant for us. The message is safe to show."""


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ENCODED_HEADERS: dict[tuple, bytes] = {}  # the few headers a process signs with (a kid, a typ), encoded once


def sign(payload: dict[str, Any], key: ec.EllipticCurvePrivateKey, headers: dict[str, Any] | None = None) -> str:
    """A compact ES256 JWS of `payload`, byte for byte what PyJWT's `jwt.encode(payload, key, "ES256", headers)`
    makes (its header sorted, `typ` JWT unless given, both compact JSON; `exp`/`iat`/`nbf` datetimes as seconds) —
    built here with pyca/cryptography directly: PyJWT's general path (algorithm lookup, key preparation, header
    validation, a new ECDSA object) cost as much again as the signature itself for every token auth issues."""
    if not isinstance(payload, dict):
        raise TypeError("a JWT's claims are a JSON object")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise TypeError("ES256 signs with a P-256 private key")
    if any(isinstance(payload.get(claim), datetime) for claim in _TIME_CLAIMS):
        payload = {k: (timegm(v.utctimetuple()) if k in _TIME_CLAIMS and isinstance(v, datetime) else v)
                   for k, v in payload.items()}
    if "iss" in payload and not isinstance(payload["iss"], str):
        raise TypeError("the issuer (iss) must be a string")
    signing_input = _encoded_header(headers) + b"." + _b64(json.dumps(payload, separators=(",", ":")).encode())
    r, s = decode_dss_signature(key.sign(signing_input, _ECDSA_SHA256))
    return (signing_input + b"." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))).decode()


_TIME_CLAIMS = ("exp", "iat", "nbf")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _encoded_header(headers: dict[str, Any] | None) -> bytes:
    try:
        cache_key = tuple(headers.items()) if headers else ()
        encoded = _ENCODED_HEADERS.get(cache_key)
    except TypeError:  # a value that cannot be a key (a list): encoded each time
        cache_key, encoded = None, None
    if encoded is None:
        header: dict[str, Any] = {"typ": "JWT", "alg": ALGORITHM, **(headers or {})}
        if header["alg"] != ALGORITHM:
            raise ValueError("only ES256 is signed here")
        if not header["typ"]:
            del header["typ"]
        if "kid" in header and not isinstance(header["kid"], str):
            raise TypeError("a key id (kid) must be a string")
        encoded = _b64(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())
        if cache_key is not None and len(_ENCODED_HEADERS) < 256:
            _ENCODED_HEADERS[cache_key] = encoded
    return encoded


def unverified_header(token: Any, algorithms: Sequence[str] = (ALGORITHM,)) -> dict[str, Any]:
    """The header, once its `alg` is one of `algorithms` (ES256 alone unless a caller names more, as JAR's PS256)."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 16384:
        raise InvalidToken("not a compact JWS")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("not a compact JWS") from None
    if header.get("alg") not in algorithms:
        raise InvalidToken(f"only {' or '.join(algorithms)} is accepted")
    return header


def verify(
    token: str,
    key: ec.EllipticCurvePublicKey,
    *,
    audience: str | Sequence[str] | None = None,
    issuer: str | None = None,
    require: Sequence[str] = ("exp", "iat"),
    typ: str | None = None,
    now: datetime | None = None,
    accept_expired: bool = False,
    algorithms: Sequence[str] = (ALGORITHM,),
) -> dict[str, Any]:
    """The verified claims. `now`: the instant `exp`/`nbf`/`iat` are judged at (default: the wall clock), with LEEWAY_S.

    `accept_expired`: everything is checked but `exp` (still required if named): an ID token used as a hint
    (OIDC Core §3.1.2.1, RP-Initiated Logout §2) names a past login, and its age does not matter."""
    header = unverified_header(token, algorithms)
    if typ is not None and header.get("typ") != typ:
        raise InvalidToken(f"the token type must be {typ}")
    options: dict[str, Any] = {"require": list(require), "verify_aud": audience is not None}
    if now is not None:
        # PyJWT judges the times only against the wall clock: it checks their types, we check them at `now`.
        options |= {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
    if accept_expired:
        options["verify_exp"] = False
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[header["alg"]],  # one of `algorithms`, pinned: the key must be of its type
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_S,
            options=options,
        )
        if now is not None:
            _check_times_at(claims, now.timestamp(), check_exp=not accept_expired)
        return claims
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("the token is not meant for this audience") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("the token signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token is invalid: {exc}") from None


def _check_times_at(claims: dict[str, Any], at: float, *, check_exp: bool = True) -> None:
    """PyJWT's checks of `exp`, `nbf` and `iat` (same conversions, same leeway), at `at` (epoch s) instead of the wall clock."""
    times: dict[str, int] = {}
    for name in ("exp", "nbf", "iat"):
        if name in claims:
            try:
                times[name] = int(claims[name])
            except (ValueError, TypeError, OverflowError):
                raise jwt.DecodeError(f"the {name} claim must be an integer") from None
    if check_exp and "exp" in times and times["exp"] <= at - LEEWAY_S:
        raise jwt.ExpiredSignatureError("Signature has expired")
    if "nbf" in times and times["nbf"] > at + LEEWAY_S:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
    if "iat" in times and times["iat"] > at + LEEWAY_S:
        raise jwt.ImmatureSignatureError("The token is not yet valid (iat)")

"""Compact JWS with ES256 and nothing else: signing and strict verification.

Every verification pins the algorithm to ES256 (no `none`, no HS*), requires
the claims the caller names and checks `aud`/`exp`/`nbf`/`iat` through PyJWT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
LEEWAY_S = 30


class InvalidToken(ValueError):
    """The token is malformed, forged, expired or not meant for us. The message is safe to show."""


def sign(payload: dict[str, Any], key: ec.EllipticCurvePrivateKey, headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers=headers)


def unverified_header(token: Any) -> dict[str, Any]:
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 16384:
        raise InvalidToken("not a compact JWS")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("not a compact JWS") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("only ES256 is accepted")
    return header


def verify(
    token: str,
    key: ec.EllipticCurvePublicKey,
    *,
    audience: str | Sequence[str] | None = None,
    issuer: str | None = None,
    require: Sequence[str] = ("exp", "iat"),
    typ: str | None = None,
) -> dict[str, Any]:
    header = unverified_header(token)
    if typ is not None and header.get("typ") != typ:
        raise InvalidToken(f"the token type must be {typ}")
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": list(require), "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("the token is not meant for this audience") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("the token signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token is invalid: {exc}") from None

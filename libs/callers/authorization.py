"""The `Authorization` request header and the `WWW-Authenticate` challenge, read and written once.

Bearer tokens (RFC 6750 §2.1), HTTP Basic client credentials (RFC 6749
§2.3.1) and the challenge a 401 or 403 carries (RFC 6750 §3). Plain strings
in and out: no framework here.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus

REALM = "harbour-id"


def bearer_token(authorization: str | None) -> str | None:
    """The token of `Bearer <token>` (scheme case-insensitive); None when absent, empty or another scheme."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def access_token_of(authorization: str | None) -> tuple[str, str] | None:
    """(scheme, token) of `Bearer <token>` or `DPoP <token>` (RFC 9449 §7.1), the scheme as "Bearer" or "DPoP";
    None when absent, empty or another scheme."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    for known in ("Bearer", "DPoP"):
        if scheme.lower() == known.lower() and token:
            return known, token
    return None


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """client_secret_basic: `Basic base64(id:secret)` as (id, secret); None when absent or malformed."""
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return (unquote_plus(client_id), unquote_plus(secret)) if sep and client_id and secret else None


def challenge(
    scheme: str = "Bearer",
    *,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    realm: str | None = REALM,
    algs: str | None = None,
) -> str:
    """`Bearer realm="harbour-id", error="…", error_description="…", scope="…"`, absent parameters left out."""
    params = [("realm", realm), ("error", error), ("error_description", description), ("scope", scope), ("algs", algs)]
    # A double quote would end the quoted-string early: the description is free text from a token check.
    quoted = ", ".join(f'{name}="{value.replace(chr(34), chr(39))}"' for name, value in params if value)
    return f"{scheme} {quoted}" if quoted else scheme

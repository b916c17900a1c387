"""What auth issues: ID tokens (OIDC Core §2), JWT access tokens (RFC 9068), opaque refresh tokens.

All JWTs are ES256 with the current JWKS key. Access tokens carry the
pairwise `sub`, `client_id`, `scope`, `acr`, `auth_time` and a `jti` that
revocation can list.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from libs import base64url
from libs.tokens import ACCESS_TOKEN_TYP
from libs.tokens.keystore import TokenSigner

ACR_BASIC = "urn:harbour-id:loa:basic"
ACR_PLUS = "urn:harbour-id:loa:plus"
ACR_RANK = {ACR_BASIC: 1, ACR_PLUS: 2}


def acr_of(assurance: str) -> str:
    return ACR_PLUS if assurance == "plus" else ACR_BASIC


def token_hash(token: str) -> str:
    """Stored form of opaque tokens and codes: a leaked database yields nothing usable."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of SHA-256 of the ASCII access token, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64url.encode(digest[: len(digest) // 2])


@dataclass(frozen=True)
class Grant:
    """Who authenticated, to which client, how: the input of every token response."""

    client_id: str
    sub: str
    account_id: str | None
    scope: str
    acr: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: int | None = None
    sid: str | None = None
    nonce: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int


async def issue_access_token(signer: TokenSigner, grant: Grant, *, audience: str, ttl_s: int,
                             jti: str | None = None, jkt: str | None = None) -> IssuedAccessToken:
    """`jkt`: the thumbprint of the DPoP key the token is bound to (RFC 9449 §6.1, `cnf.jkt`)."""
    now = int(time.time())
    jti = jti or uuid.uuid4().hex
    claims: dict[str, Any] = {
        "sub": grant.sub,
        "aud": audience,
        "client_id": grant.client_id,
        "scope": grant.scope,
        "iat": now,
        "exp": now + ttl_s,
        "jti": jti,
    }
    if grant.auth_time is not None:
        claims["auth_time"] = grant.auth_time
    if grant.acr:
        claims["acr"] = grant.acr
    if jkt:
        claims["cnf"] = {"jkt": jkt}
    token = await signer.sign(claims, typ=ACCESS_TOKEN_TYP)
    return IssuedAccessToken(token, jti, ttl_s)


async def issue_id_token(signer: TokenSigner, grant: Grant, *, access_token: str | None, ttl_s: int) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": grant.sub,
        "aud": grant.client_id,
        "azp": grant.client_id,
        "iat": now,
        "exp": now + ttl_s,
        "auth_time": grant.auth_time,
        "acr": grant.acr,
        "amr": list(grant.amr),
        "sid": grant.sid,
    }
    if grant.nonce:
        claims["nonce"] = grant.nonce
    if access_token:
        claims["at_hash"] = at_hash(access_token)
    return await signer.sign({k: v for k, v in claims.items() if v is not None})

"""Access tokens presented back to auth: userinfo (OIDC Core §5.3), introspection (RFC 7662), revocation (RFC 7009)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from libs.tokens import InvalidToken

from ..clients.registry import find_client
from ..collections import ACCOUNTS, REFRESH_TOKENS
from .errors import OAuthError
from .pairwise import account_for
from .token_response import is_revoked, revoke_access_tokens, revoke_family
from .tokens import ACCESS_TOKEN_TYP, token_hash

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth


async def verify_access_token(auth: "Auth", token: str) -> dict[str, Any]:
    """A valid, unrevoked access token of ours, or OAuthError invalid_token (RFC 6750 §3.1)."""
    try:
        claims = await auth.signer.verify(
            token, audience=auth.settings.issuer, typ=ACCESS_TOKEN_TYP, require=("exp", "iat", "sub", "iss", "aud", "jti", "client_id")
        )
    except InvalidToken as exc:
        raise OAuthError("invalid_token", str(exc), 401) from None
    if await is_revoked(auth, claims["jti"]):
        raise OAuthError("invalid_token", "the token has been revoked", 401)
    return claims


async def userinfo(auth: "Auth", token: str) -> dict[str, Any]:
    claims = await verify_access_token(auth, token)
    if "openid" not in claims.get("scope", "").split():
        raise OAuthError("insufficient_scope", "the token was not issued for openid", 403)
    client = await find_client(auth.db, claims["client_id"])
    account_id = await account_for(auth.db, claims["sub"], client.sector) if client else None
    account = await auth.db[ACCOUNTS].find_one({"_id": account_id}) if account_id else None
    if account is None or account["state"] != "active":
        raise OAuthError("invalid_token", "the citizen's account is not active", 401)
    # Personal data is released only through consented form filling, never through userinfo.
    return {"sub": claims["sub"], "assurance_level": account["assurance"]}


async def introspect(auth: "Auth", client: "Client", token: str | None) -> dict[str, Any]:
    """Only the calling client's own tokens are described; anything else is simply inactive."""
    if not token:
        return {"active": False}
    doc = await auth.db[REFRESH_TOKENS].find_one({"_id": token_hash(token)})
    if doc is not None:
        grant = doc["grant"]
        active = doc["status"] == "active" and doc["expires_at"] > datetime.now(UTC) and grant["client_id"] == client.client_id
        if not active:
            return {"active": False}
        return {"active": True, "token_type": "refresh_token", "client_id": grant["client_id"], "sub": grant["sub"],
                "scope": grant["scope"], "exp": int(doc["expires_at"].timestamp()), "iss": auth.settings.issuer}
    try:
        claims = await verify_access_token(auth, token)
    except OAuthError:
        return {"active": False}
    if claims["client_id"] != client.client_id:
        return {"active": False}
    return {"active": True, "token_type": "Bearer", **{k: claims[k] for k in ("client_id", "sub", "scope", "exp", "iat", "iss", "aud", "jti") if k in claims},
            **{k: claims[k] for k in ("acr", "auth_time") if k in claims}}


async def revoke(auth: "Auth", client: "Client", token: str | None) -> None:
    """RFC 7009: always a success for the caller; only its own tokens are affected."""
    if not token:
        return
    doc = await auth.db[REFRESH_TOKENS].find_one({"_id": token_hash(token)})
    if doc is not None:
        if doc["grant"]["client_id"] == client.client_id:
            await revoke_family(auth, doc["family_id"])
        return
    try:
        claims = await verify_access_token(auth, token)
    except OAuthError:
        return
    if claims["client_id"] == client.client_id:
        await revoke_access_tokens(auth, [claims["jti"]])

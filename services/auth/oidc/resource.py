"""Access tokens presented back to auth: userinfo (OIDC Core §5.3), introspection (RFC 7662), revocation (RFC 7009)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from libs import tokens as jwt_tokens

from ..clients.registry import find_client
from ..collections import ACCOUNTS, REFRESH_TOKENS
from .errors import InsufficientScope, InvalidToken
from .pairwise import account_for
from .token_response import Why, is_revoked, revoke_access_tokens, revoke_family
from .tokens import ACCESS_TOKEN_TYP, token_hash
from .views import Introspection, UserInfo

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth


# What introspection tells the client about its own access token (RFC 7662 §2.2).
DESCRIBED_CLAIMS = ("client_id", "sub", "scope", "exp", "iat", "iss", "aud", "jti", "acr", "auth_time", "cnf")


async def verify_access_token(auth: "Auth", token: str) -> dict[str, Any]:
    """A valid, unrevoked access token of ours, or InvalidToken (RFC 6750 §3.1)."""
    try:
        claims = await auth.signer.verify(
            token, audience=auth.settings.issuer, typ=ACCESS_TOKEN_TYP, require=("exp", "iat", "sub", "iss", "aud", "jti", "client_id")
        )
    except jwt_tokens.InvalidToken as exc:
        raise InvalidToken(str(exc)) from None
    if await is_revoked(auth, claims["jti"]):
        raise InvalidToken("the token has been revoked")
    return claims


async def userinfo(auth: "Auth", token: str, sender: Callable[[dict[str, Any]], None] | None = None) -> UserInfo:
    """`sender`: checks how the token was presented (DPoP, RFC 9449), raising a refusal."""
    claims = await verify_access_token(auth, token)
    if sender is not None:
        sender(claims)
    if "openid" not in claims.get("scope", "").split():
        raise InsufficientScope("the token was not issued for openid")
    client = await find_client(auth.db, claims["client_id"])
    account_id = await account_for(auth.db, claims["sub"], client.sector) if client else None
    account = await auth.db[ACCOUNTS].find_one({"_id": account_id}) if account_id else None
    if account is None or account["state"] != "active":
        raise InvalidToken("the citizen's account is not active")
    # Personal data is released only through consented form filling, never through userinfo.
    return UserInfo(sub=claims["sub"], assurance_level=account["assurance"])


async def introspect(auth: "Auth", client: "Client", token: str | None) -> Introspection:
    """Only the calling client's own tokens are described; anything else is simply inactive."""
    inactive = Introspection(active=False)
    if not token:
        return inactive
    doc = await auth.db[REFRESH_TOKENS].find_one({"_id": token_hash(token)})
    if doc is not None:
        grant = doc["grant"]
        active = doc["status"] == "active" and doc["expires_at"] > auth.clock.now() and grant["client_id"] == client.client_id
        if not active:
            return inactive
        return Introspection(active=True, token_type="refresh_token", client_id=grant["client_id"], sub=grant["sub"],
                             scope=grant["scope"], exp=int(doc["expires_at"].timestamp()), iss=auth.settings.issuer)
    try:
        claims = await verify_access_token(auth, token)
    except InvalidToken:
        return inactive
    if claims["client_id"] != client.client_id:
        return inactive
    # RFC 9449 §6.2: a DPoP-bound token is described as such, with its key's thumbprint.
    return Introspection(active=True, token_type="DPoP" if "cnf" in claims else "Bearer",
                         **{k: claims[k] for k in DESCRIBED_CLAIMS if k in claims})


async def revoke(auth: "Auth", client: "Client", token: str | None) -> None:
    """RFC 7009: always a success for the caller; only its own tokens are affected."""
    if not token:
        return
    doc = await auth.db[REFRESH_TOKENS].find_one({"_id": token_hash(token)})
    if doc is not None:
        if doc["grant"]["client_id"] == client.client_id:
            await revoke_family(auth, doc["family_id"], Why(doc["grant"].get("account_id"), client.client_id, "client-request"))
        return
    try:
        claims = await verify_access_token(auth, token)
    except InvalidToken:
        return
    if claims["client_id"] == client.client_id:
        # Whose token, for the audit record: the account behind its pairwise sub (none for a client's own token).
        account_id = await account_for(auth.db, claims["sub"], client.sector)
        await revoke_access_tokens(auth, [claims["jti"]], Why(account_id, client.client_id, "client-request"))

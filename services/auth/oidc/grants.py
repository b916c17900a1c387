"""The grants of the token endpoint (RFC 6749 §4.1.3, §6, §4.4; CIBA §10.1), one function each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..collections import ACCOUNTS, AUTHORIZATION_CODES, REFRESH_TOKENS
from .errors import InvalidGrant, InvalidRequest, InvalidScope, UnauthorizedClient
from .pkce import verifier_matches
from .token_response import OFFLINE_ACCESS, grant_from, revoke_access_tokens, revoke_family, token_response
from .tokens import Grant, token_hash
from .views import TokenResponse

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth


async def authorization_code(auth: "Auth", client: "Client", form: dict[str, str]) -> TokenResponse:
    code = form.get("code")
    if not code:
        raise InvalidRequest("code is required")
    codes = auth.db[AUTHORIZATION_CODES]
    doc = await codes.find_one({"_id": token_hash(code)})
    if doc is None or doc["grant"]["client_id"] != client.client_id:
        raise InvalidGrant("the code is unknown or was issued to another client")
    if doc["used_at"] is not None:
        # RFC 6749 §4.1.2: a code used twice revokes what it issued.
        if doc.get("family_id"):
            await revoke_family(auth, doc["family_id"])
        await revoke_access_tokens(auth, [doc["at_jti"]] if doc.get("at_jti") else [])
        raise InvalidGrant("the code was already used; the tokens issued with it are revoked")
    if auth.clock.now() >= doc["expires_at"]:
        raise InvalidGrant("the code has expired")
    if form.get("redirect_uri") != doc["redirect_uri"]:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    if not verifier_matches(form.get("code_verifier"), doc["code_challenge"]):
        raise InvalidGrant("the PKCE code_verifier does not match")
    claimed = await codes.update_one({"_id": doc["_id"], "used_at": None}, {"$set": {"used_at": auth.clock.now()}})
    if claimed.modified_count != 1:
        raise InvalidGrant("the code was already used")
    grant = grant_from(doc["grant"])
    family_id = f"code-{doc['_id'][:24]}"
    answer, jti = await token_response(auth, grant, id_token=True, refresh_family=family_id)
    await codes.update_one({"_id": doc["_id"]}, {"$set": {"family_id": family_id, "at_jti": jti}})
    return answer


async def refresh_token(auth: "Auth", client: "Client", form: dict[str, str]) -> TokenResponse:
    presented = form.get("refresh_token")
    if not presented:
        raise InvalidRequest("refresh_token is required")
    tokens = auth.db[REFRESH_TOKENS]
    doc = await tokens.find_one({"_id": token_hash(presented)})
    if doc is None or doc["grant"]["client_id"] != client.client_id:
        raise InvalidGrant("the refresh token is unknown or was issued to another client")
    if doc["status"] == "rotated":
        await revoke_family(auth, doc["family_id"])
        raise InvalidGrant("the refresh token was already used; every token of this login is revoked")
    if doc["status"] != "active" or auth.clock.now() >= doc["expires_at"]:
        raise InvalidGrant("the refresh token is revoked or expired")
    # Everything is checked before the token rotates: a refused refresh must not burn a good token.
    granted = doc["grant"]["scope"]
    if OFFLINE_ACCESS not in granted.split() or OFFLINE_ACCESS not in client.scopes or not set(granted.split()) <= client.scopes:
        # Issued without offline_access (before it was required), or the client's registration no longer allows it.
        await revoke_family(auth, doc["family_id"])
        raise InvalidGrant("offline access is not granted to this client; the citizen must log in again")
    account = await auth.db[ACCOUNTS].find_one({"_id": doc["grant"]["account_id"]}, {"state": 1})
    if account is None or account["state"] != "active":
        await revoke_family(auth, doc["family_id"])
        raise InvalidGrant("the citizen's account is not active; every token of this login is revoked")
    scope = granted
    if form.get("scope"):
        narrower = form["scope"].split()
        if not set(narrower) <= set(granted.split()):
            raise InvalidScope("a refresh may only narrow the scope the citizen granted")
        scope = " ".join(dict.fromkeys(narrower))
    rotated = await tokens.update_one({"_id": doc["_id"], "status": "active"}, {"$set": {"status": "rotated", "rotated_at": auth.clock.now()}})
    if rotated.modified_count != 1:
        await revoke_family(auth, doc["family_id"])
        raise InvalidGrant("the refresh token was already used; every token of this login is revoked")
    grant = grant_from(doc["grant"], scope=scope)
    answer, _ = await token_response(auth, grant, id_token="openid" in scope.split(), refresh_family=doc["family_id"], granted_scope=granted)
    return answer


# A relying party acts on its own only to start anonymous journeys (form filling, signing without a login)
# and to notify the citizens it knows (by their pairwise sub) through notify.
RELYING_PARTY_CLIENT_SCOPES = frozenset({"formfill", "sign", "notify"})


async def client_credentials(auth: "Auth", client: "Client", form: dict[str, str]) -> TokenResponse:
    allowed = client.scopes - {"openid", "offline_access"}
    if client.kind == "relying_party":
        allowed &= RELYING_PARTY_CLIENT_SCOPES
    if not allowed:
        raise UnauthorizedClient("client_credentials is for agencies, kiosks, anonymous form-fill or signing journeys and notifications")
    requested = set(form.get("scope", "").split()) or allowed
    if not requested <= allowed:
        raise InvalidScope("the client may not ask for these scopes")
    grant = Grant(client_id=client.client_id, sub=client.client_id, account_id=None, scope=" ".join(sorted(requested)))
    answer, _ = await token_response(auth, grant, id_token=False, with_refresh=False)
    return answer

"""The grants of the token endpoint (RFC 6749 §4.1.3, §6, §4.4; CIBA §10.1), one function each."""

from __future__ import annotations

import hmac
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from ..collections import ACCOUNTS, AUTHORIZATION_CODES, AUTHORIZATIONS, REFRESH_TOKENS
from . import fapi
from .decided import DECIDED
from .login import LOGIN_CODE_SEPARATOR
from .errors import InvalidGrant, InvalidRequest, InvalidScope, UnauthorizedClient
from .pkce import verifier_matches
from .token_response import OFFLINE_ACCESS, Why, grant_from, revoke_access_tokens, revoke_family, token_response
from .tokens import Grant, token_hash
from .views import TokenResponse

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth


async def authorization_code(auth: "Auth", client: "Client", form: dict[str, str], *, jkt: str | None = None) -> TokenResponse:
    code = form.get("code")
    if not code:
        raise InvalidRequest("code is required")
    hashed = token_hash(code)
    if LOGIN_CODE_SEPARATOR in code:
        # A browser login's code: its record is in the login's document (login.login_code), read by _id.
        # Decided in this process: from memory (the conditional update below is the authority on its use).
        store, prefix, tx = auth.db[AUTHORIZATIONS], "code.", code.split(LOGIN_CODE_SEPARATOR, 1)[0]
        login = DECIDED.recall(auth.db.name, tx) or await store.find_one({"_id": tx}, {"code": 1})
        doc = (login or {}).get("code")
        if doc is not None and not hmac.compare_digest(doc["hash"], hashed):
            doc = None
        key = login["_id"] if doc is not None else None
    else:  # a code of its own (prompt=none)
        store, prefix = auth.db[AUTHORIZATION_CODES], ""
        doc = await store.find_one({"_id": hashed})
        key = hashed
    if doc is None or doc["grant"]["client_id"] != client.client_id:
        raise InvalidGrant("the code is unknown or was issued to another client")
    if doc["used_at"] is not None:
        # RFC 6749 §4.1.2: a code used twice revokes what it issued.
        if doc.get("family_id"):
            await revoke_family(auth, doc["family_id"])
        await revoke_access_tokens(auth, [doc["at_jti"]] if doc.get("at_jti") else [], _replayed(doc, client))
        raise InvalidGrant("the code was already used; the tokens issued with it are revoked")
    # FAPI 2.0 clients: a code is good for 60 s at most (fapi.py), whatever the code lifetime (settings.code_ttl_s).
    if auth.clock.now() >= fapi.code_expires_at(client, doc["expires_at"], auth.settings.code_ttl_s):
        raise InvalidGrant("the code has expired")
    if form.get("redirect_uri") != doc["redirect_uri"]:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    if not verifier_matches(form.get("code_verifier"), doc["code_challenge"]):
        raise InvalidGrant("the PKCE code_verifier does not match")
    # RFC 9449 §10: a code bound to a DPoP key (dpop_jkt, or PAR's proof) is redeemed with a proof by that key only.
    if doc.get("dpop_jkt") and doc["dpop_jkt"] != jkt:
        raise InvalidGrant("the code is bound to another DPoP key (dpop_jkt)")
    # One conditional update by _id uses the code and names what it will issue (the access token's jti is
    # chosen first), so a second use finds what to revoke even while the first is still being answered.
    family_id, jti = f"code-{hashed[:24]}", uuid.uuid4().hex
    claimed = await store.update_one({"_id": key, prefix + "used_at": None}, {"$set": {
        prefix + "used_at": auth.clock.now(), prefix + "family_id": family_id, prefix + "at_jti": jti}})
    if claimed.modified_count != 1:
        if prefix and (used := ((await store.find_one({"_id": key}, {"code": 1})) or {}).get("code")) and used["used_at"]:
            # Used meanwhile (or before, unseen in memory): a second use revokes what the first bought.
            if used.get("family_id"):
                await revoke_family(auth, used["family_id"])
            await revoke_access_tokens(auth, [used["at_jti"]] if used.get("at_jti") else [], _replayed(doc, client))
            raise InvalidGrant("the code was already used; the tokens issued with it are revoked")
        raise InvalidGrant("the code was already used")
    # The record in hand says so too: a concurrent use that recalled the same record from memory before it was
    # forgotten (below) goes straight to revoking.
    doc.update({"used_at": auth.clock.now(), "family_id": family_id, "at_jti": jti})
    if prefix:
        # Redeemed: the login leaves this process's memory. A later use reads its document, which the conditional
        # update above marked used and by what, and revokes that — as in a replica that never held it.
        DECIDED.forget(auth.db.name, tx)
    answer, _ = await token_response(auth, grant_from(doc["grant"]), id_token=True, refresh_family=family_id, jti=jti, jkt=jkt)
    return answer


def _why(doc: dict, client: "Client", reason: str, *, reuse: bool = False) -> Why:
    """The audit record's side of revoking what a code or refresh token `doc` issued (token_response.Why)."""
    return Why(account_id=doc["grant"].get("account_id"), client_id=client.client_id, reason=reason, reuse=reuse)


def _replayed(doc: dict, client: "Client") -> Why:
    return _why(doc, client, "code-replayed", reuse=True)


# A client that lost the answer to a refresh may present the token it rotated once more this long after, with a proof
# by the key the token is bound to (FAPI 2.0 Security Profile §5.3.2.1): see `_retried_after_a_lost_answer`.
LOST_ANSWER_RETRY_S = 60


def _retried_after_a_lost_answer(auth: "Auth", doc: dict, jkt: str | None) -> bool:
    """Whether a rotated refresh token, presented again, may be the same client retrying a refresh whose answer it
    never received: the token is DPoP-bound and this proof is by its key (a thief would need the key, so the retry
    cannot be a theft), it was rotated at most LOST_ANSWER_RETRY_S ago, and the token it was rotated to is recorded.
    Whether that successor was never used is settled atomically when it is superseded (`refresh_token`). A bearer
    refresh token gets no such grace: presenting it again is reuse, and revokes the family."""
    rotated_at = doc.get("rotated_at")
    return bool(doc.get("jkt") and jkt == doc["jkt"] and doc.get("successor") and rotated_at is not None
                and auth.clock.now() - rotated_at <= timedelta(seconds=LOST_ANSWER_RETRY_S))


async def refresh_token(auth: "Auth", client: "Client", form: dict[str, str], *, jkt: str | None = None) -> TokenResponse:
    """`jkt`: the request's DPoP key. A refresh token issued with a DPoP proof is bound to that key (RFC 9449 §5):
    refreshed only with a proof by the same key, whatever the client's authentication.

    Refresh tokens rotate on every use, and a rotated one presented again revokes the whole family — except a
    DPoP-bound one retried by its key within LOST_ANSWER_RETRY_S while the token it was rotated to is still unused:
    that unused successor (and the access token issued with it) is revoked and a new pair issued."""
    presented = form.get("refresh_token")
    if not presented:
        raise InvalidRequest("refresh_token is required")
    tokens = auth.db[REFRESH_TOKENS]
    doc = await tokens.find_one({"_id": token_hash(presented)})
    if doc is None or doc["grant"]["client_id"] != client.client_id:
        raise InvalidGrant("the refresh token is unknown or was issued to another client")
    retry = doc["status"] == "rotated" and _retried_after_a_lost_answer(auth, doc, jkt)
    if doc["status"] == "rotated" and not retry:
        await revoke_family(auth, doc["family_id"], _why(doc, client, "refresh-token-reused", reuse=True))
        raise InvalidGrant("the refresh token was already used; every token of this login is revoked")
    if doc["status"] not in ("active", "rotated") or auth.clock.now() >= doc["expires_at"]:
        raise InvalidGrant("the refresh token is revoked or expired")
    # Everything is checked before the token rotates: a refused refresh must not burn a good token.
    if doc.get("jkt") and doc["jkt"] != jkt:
        raise InvalidGrant("the refresh token is DPoP-bound: refresh it with a proof by the key it is bound to")
    granted = doc["grant"]["scope"]
    if OFFLINE_ACCESS not in granted.split() or OFFLINE_ACCESS not in client.scopes or not set(granted.split()) <= client.scopes:
        # Issued without offline_access (before it was required), or the client's registration no longer allows it.
        await revoke_family(auth, doc["family_id"], _why(doc, client, "offline-access-withdrawn"))
        raise InvalidGrant("offline access is not granted to this client; the citizen must log in again")
    account = await auth.db[ACCOUNTS].find_one({"_id": doc["grant"]["account_id"]}, {"state": 1})
    if account is None or account["state"] != "active":
        await revoke_family(auth, doc["family_id"], _why(doc, client, "account-inactive"))
        raise InvalidGrant("the citizen's account is not active; every token of this login is revoked")
    scope = granted
    if form.get("scope"):
        narrower = form["scope"].split()
        if not set(narrower) <= set(granted.split()):
            raise InvalidScope("a refresh may only narrow the scope the citizen granted")
        scope = " ".join(dict.fromkeys(narrower))
    if retry:
        # The successor must still be unused: superseding it is the single use of this retry. Used (rotated) or
        # already superseded, the answer did reach someone: reuse.
        superseded = await tokens.find_one_and_update({"_id": doc["successor"], "status": "active"},
                                                      {"$set": {"status": "superseded"}}, projection={"at_jti": 1})
        if superseded is None:
            await revoke_family(auth, doc["family_id"], _why(doc, client, "refresh-token-reused", reuse=True))
            raise InvalidGrant("the refresh token was already used; every token of this login is revoked")
        await revoke_access_tokens(auth, [superseded.get("at_jti")])  # it went out in the lost answer
    else:
        rotated = await tokens.update_one({"_id": doc["_id"], "status": "active"},
                                          {"$set": {"status": "rotated", "rotated_at": auth.clock.now()}})
        if rotated.modified_count != 1:
            await revoke_family(auth, doc["family_id"], _why(doc, client, "refresh-token-reused", reuse=True))
            raise InvalidGrant("the refresh token was already used; every token of this login is revoked")
    grant = grant_from(doc["grant"], scope=scope)
    answer, _ = await token_response(auth, grant, id_token="openid" in scope.split(), refresh_family=doc["family_id"],
                                     granted_scope=granted, jkt=jkt)
    if answer.refresh_token and jkt:
        # A retry after a lost answer needs to know which token this one was rotated to (only DPoP-bound ones retry).
        await tokens.update_one({"_id": doc["_id"]}, {"$set": {"successor": token_hash(answer.refresh_token)}})
    return answer


# A relying party acts on its own only to start anonymous journeys (form filling, signing without a login)
# and to notify the citizens it knows (by their pairwise sub) through notify, and to read what its own users did
# with it in the data tracker (`activity`).
RELYING_PARTY_CLIENT_SCOPES = frozenset({"formfill", "sign", "notify", "activity"})


async def client_credentials(auth: "Auth", client: "Client", form: dict[str, str], *, jkt: str | None = None) -> TokenResponse:
    allowed = client.scopes - {"openid", "offline_access"}
    if client.kind == "relying_party":
        allowed &= RELYING_PARTY_CLIENT_SCOPES
    if not allowed:
        raise UnauthorizedClient("client_credentials is for agencies, kiosks, anonymous form-fill or signing journeys and notifications")
    requested = set(form.get("scope", "").split()) or allowed
    if not requested <= allowed:
        raise InvalidScope("the client may not ask for these scopes")
    grant = Grant(client_id=client.client_id, sub=client.client_id, account_id=None, scope=" ".join(sorted(requested)))
    answer, _ = await token_response(auth, grant, id_token=False, with_refresh=False, jkt=jkt)
    return answer

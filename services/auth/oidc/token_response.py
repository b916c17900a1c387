"""Building a token response (RFC 6749 §5.1, OIDC Core §3.1.3.3) and revoking what a grant issued.

Refresh tokens are opaque, stored as hashes, and belong to a family (one
login). Rotation (RFC 9700 §4.14.2) issues a new one with every use; a used
one presented again means theft, so the whole family and the access tokens it
issued are revoked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.revocation import events as revocation_events

from ..collections import REFRESH_TOKENS, REVOKED_TOKENS
from .tokens import Grant, issue_access_token, issue_id_token, new_opaque_token, token_hash
from .views import TokenResponse

if TYPE_CHECKING:
    from ..context import Auth


def grant_from(doc: dict[str, Any], **overrides: Any) -> Grant:
    values = {k: doc.get(k) for k in ("client_id", "sub", "account_id", "scope", "acr", "auth_time", "sid", "nonce")}
    values["amr"] = tuple(doc.get("amr") or ())
    values.update(overrides)
    return Grant(**values)


OFFLINE_ACCESS = "offline_access"


async def token_response(
    auth: "Auth", grant: Grant, *, id_token: bool, refresh_family: str | None = None, with_refresh: bool = True,
    granted_scope: str | None = None, jti: str | None = None, jkt: str | None = None,
) -> tuple[TokenResponse, str]:
    """The token response, and the access token's jti (to revoke it with its grant).

    A refresh token only for a citizen's grant that includes offline_access, which the client must have
    registered and the citizen approved on the phone (OIDC Core §11). It carries `granted_scope` (default:
    the grant's), so a refresh that narrows the access token's scope keeps the refresh token's (RFC 6749 §6).
    `jkt`: the request's DPoP key (RFC 9449): the access token is DPoP-bound to it, and so is the refresh token.
    """
    granted_scope = granted_scope or grant.scope
    settings = auth.settings
    access = await issue_access_token(auth.signer, grant, audience=settings.issuer, ttl_s=settings.access_token_ttl_s, jti=jti, jkt=jkt)
    answer = TokenResponse(access_token=access.token, token_type="DPoP" if jkt else "Bearer", expires_in=access.expires_in,
                           scope=grant.scope)
    if id_token:
        answer.id_token = await issue_id_token(auth.signer, grant, access_token=access.token, ttl_s=settings.id_token_ttl_s)
    if with_refresh and grant.account_id and OFFLINE_ACCESS in granted_scope.split():
        refresh = new_opaque_token()
        now = auth.clock.now()
        await auth.db[REFRESH_TOKENS].insert_one(
            {
                "_id": token_hash(refresh),
                "family_id": refresh_family or secrets.token_urlsafe(12),
                "status": "active",
                "at_jti": access.jti,
                "jkt": jkt,
                "grant": {**grant.__dict__, "scope": granted_scope, "amr": list(grant.amr), "nonce": None, "extra": None},
                "created_at": now,
                "expires_at": now + timedelta(seconds=settings.refresh_token_ttl_s),
            }
        )
        answer.refresh_token = refresh
    return answer, access.jti


@dataclass(frozen=True)
class Why:
    """Whose tokens a revocation takes and why: its audit record, written in the revocation's transaction.

    `reason`: `client-request` (RFC 7009), `code-replayed`, `refresh-token-reused` (both `reuse`: a reuse detected,
    action `token.reuse_detected`, else `token.revoke`), `offline-access-withdrawn`, `account-inactive`."""

    account_id: str | None
    client_id: str
    reason: str
    reuse: bool = False

    async def audit(self, auth: "Auth", session: AsyncClientSession, **counts: int) -> None:
        await auth.audit(session, subject=self.account_id or self.client_id,
                         action="token.reuse_detected" if self.reuse else "token.revoke",
                         actor=self.client_id if self.reason == "client-request" else "auth",
                         client_id=self.client_id, reason=self.reason, **counts)


async def revoke_access_tokens(auth: "Auth", jtis: list[str], why: Why | None = None) -> None:
    """Refused by auth at once, and by every other service and the gateway once the revocation event reaches them."""
    jtis = [j for j in jtis if j]

    async def work(session: AsyncClientSession) -> None:
        if jtis:
            await _revoke_access_tokens(auth, session, jtis)
        if why is not None:
            await why.audit(auth, session, access_tokens=len(jtis))

    if jtis or why is not None:
        await auth.transaction(work)


async def _revoke_access_tokens(auth: "Auth", session: AsyncClientSession, jtis: list[str]) -> None:
    """Inside the caller's transaction: auth's own list and the `revocations` event go together (outbox)."""
    expires_at = auth.clock.now() + timedelta(seconds=auth.settings.access_token_ttl_s + 120)
    for jti in jtis:
        await auth.db[REVOKED_TOKENS].update_one({"_id": jti}, {"$set": {"expires_at": expires_at}}, upsert=True, session=session)
    await revocation_events.tokens_revoked(auth.outbox, session, jtis, expires_at=expires_at.timestamp())


async def revoke_family(auth: "Auth", family_id: str, why: Why | None = None) -> None:
    """Every refresh token of the family, and the access tokens they were issued with that may still be valid."""

    async def work(session: AsyncClientSession) -> None:
        docs = await auth.db[REFRESH_TOKENS].find({"family_id": family_id}, {"at_jti": 1, "created_at": 1}, session=session).to_list()
        await auth.db[REFRESH_TOKENS].update_many({"family_id": family_id}, {"$set": {"status": "revoked"}}, session=session)
        # An access token is issued with its refresh token: older ones than its lifetime have expired already.
        # (A document without created_at counts as recent: revoked rather than skipped.)
        now = auth.clock.now()
        live_since = now - timedelta(seconds=auth.settings.access_token_ttl_s + 120)
        jtis = [d["at_jti"] for d in docs if d.get("at_jti") and (d.get("created_at") or now) >= live_since]
        if jtis:
            await _revoke_access_tokens(auth, session, jtis)
        if why is not None:
            await why.audit(auth, session, refresh_tokens=len(docs), access_tokens=len(jtis))

    await auth.transaction(work)



async def revoke_account_grants(auth: "Auth", session: AsyncClientSession, account_id: str) -> int:
    """Inside the caller's transaction: every refresh token of the account's logins, and the access tokens issued
    with them that may still be valid (a lost phone replaced: what relying parties got through its approvals must
    not outlive it). Return how many refresh tokens were still usable."""
    docs = await auth.db[REFRESH_TOKENS].find({"grant.account_id": account_id},
                                              {"status": 1, "at_jti": 1, "created_at": 1}, session=session).to_list()
    usable = [d["_id"] for d in docs if d.get("status") != "revoked"]
    if usable:
        await auth.db[REFRESH_TOKENS].update_many({"_id": {"$in": usable}}, {"$set": {"status": "revoked"}}, session=session)
    now = auth.clock.now()
    live_since = now - timedelta(seconds=auth.settings.access_token_ttl_s + 120)
    jtis = [d["at_jti"] for d in docs if d.get("at_jti") and (d.get("created_at") or now) >= live_since]
    if jtis:
        await _revoke_access_tokens(auth, session, jtis)
    return len(usable)

async def is_revoked(auth: "Auth", jti: str) -> bool:
    return await auth.db[REVOKED_TOKENS].find_one({"_id": jti}, {"_id": 1}) is not None

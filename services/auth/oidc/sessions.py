"""Browser sessions at the issuer: what a citizen approved on the phone, remembered for `prompt=none`.

A session is opened when the browser completes an approved login (the
session's document and its cookie in one insert; a CIBA login's, which has
no browser, in the decision's transaction) and holds exactly what the
citizen approved there: one client
and the scopes the phone showed. Silent single sign-on (`prompt=none`) may
only repeat such an approval, for the same client and a subset of its
scopes; anything else goes back to the phone (OIDC Core §3.1.2.6). A new
interactive login in the same browser replaces the session: approvals are
never carried from one session to another.

The session's public id (`sid`) appears in ID tokens for logout; the cookie
is a separate secret handed to the browser once, at the end of the login,
and stored only as a hash, so neither the database nor a relying party that
reads an ID token learns a usable cookie.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from ..collections import SESSIONS
from .tokens import new_opaque_token, token_hash

if TYPE_CHECKING:
    from ..context import Auth

# Never approved silently: a refresh token needs the citizen's consent each time (OIDC Core §11).
NEVER_SILENT = frozenset({"offline_access"})


async def open_session(
    auth: "Auth", session: AsyncClientSession | None, *, sid: str, account_id: str, auth_time: int, acr: str,
    client_id: str, scopes: list[str], amr: list[str],
) -> None:
    """Record an approved login: the session and the one client/scope set the citizen approved (and how: `amr`)."""
    await auth.db[SESSIONS].insert_one(
        {"_id": sid, "cookie_hash": None, "account_id": account_id, "auth_time": auth_time, "acr": acr, "amr": amr,
         "approved": [{"client_id": client_id, "scopes": sorted(set(scopes) - NEVER_SILENT)}],
         "expires_at": auth.clock.now() + timedelta(seconds=auth.settings.session_ttl_s)},
        session=session,
    )


async def open_with_cookie(auth: "Auth", grant: dict[str, Any], previous_cookie: str | None) -> str | None:
    """The browser completes an approved login: its session and the cookie for it in one insert, once.

    `grant` is the login's (its sid, account, auth_time, acr, client and scope). Opened already (the
    completion URL opened twice): no cookie. The browser's previous session (if any) ends."""
    cookie = new_opaque_token()
    try:
        await auth.db[SESSIONS].insert_one(
            {"_id": grant["sid"], "cookie_hash": token_hash(cookie), "account_id": grant["account_id"],
             "auth_time": grant["auth_time"], "acr": grant["acr"], "amr": grant.get("amr"),
             "approved": [{"client_id": grant["client_id"], "scopes": sorted(set(grant["scope"].split()) - NEVER_SILENT)}],
             "expires_at": auth.clock.now() + timedelta(seconds=auth.settings.session_ttl_s)})
    except DuplicateKeyError:
        # Handed out before — or a login decided before sessions were opened here, whose session awaits its cookie.
        return await hand_out_cookie(auth, grant["sid"], previous_cookie)
    if previous_cookie:
        await auth.db[SESSIONS].delete_one({"cookie_hash": token_hash(previous_cookie), "_id": {"$ne": grant["sid"]}})
    return cookie


async def hand_out_cookie(auth: "Auth", sid: str, previous_cookie: str | None) -> str | None:
    """The cookie for a freshly approved session, once; the browser's previous session (if any) ends."""
    cookie = new_opaque_token()
    bound = await auth.db[SESSIONS].update_one({"_id": sid, "cookie_hash": None}, {"$set": {"cookie_hash": token_hash(cookie)}})
    if bound.modified_count != 1:
        return None  # already handed out (the completion URL was opened twice)
    if previous_cookie:
        await auth.db[SESSIONS].delete_one({"cookie_hash": token_hash(previous_cookie), "_id": {"$ne": sid}})
    return cookie


async def find_by_cookie(auth: "Auth", cookie: str | None) -> dict[str, Any] | None:
    if not cookie:
        return None
    return await auth.db[SESSIONS].find_one({"cookie_hash": token_hash(cookie), "expires_at": {"$gt": auth.clock.now()}})


def approved(session_doc: dict[str, Any], client_id: str, scopes: list[str]) -> bool:
    """Did the citizen approve, in this session, this client for every one of these scopes?"""
    wanted = set(scopes)
    if wanted & NEVER_SILENT:
        return False
    return any(a["client_id"] == client_id and wanted <= set(a["scopes"]) for a in session_doc.get("approved", []))


async def ending(auth: "Auth", *, sid: str | None, cookie: str | None,
                 session: AsyncClientSession | None = None) -> dict[str, list[str]]:
    """The sessions `end` would end (the ID token's sid, the browser's own): their sids by account."""
    named: list[dict[str, Any]] = [{"_id": sid}] if sid else []
    if cookie:
        named.append({"cookie_hash": token_hash(cookie)})
    by_account: dict[str, list[str]] = {}
    if named:
        for doc in await auth.db[SESSIONS].find({"$or": named}, {"account_id": 1}, session=session).to_list():
            by_account.setdefault(doc["account_id"], []).append(doc["_id"])
    return by_account


async def end(auth: "Auth", *, sid: str | None, cookie: str | None,
              session: AsyncClientSession | None = None) -> dict[str, Any] | None:
    """Logout: the session named by the ID token's sid and the browser's own; the first one found is returned."""
    removed = None
    if sid:
        removed = await auth.db[SESSIONS].find_one_and_delete({"_id": sid}, session=session)
    if cookie:
        removed = await auth.db[SESSIONS].find_one_and_delete({"cookie_hash": token_hash(cookie)}, session=session) or removed
    return removed

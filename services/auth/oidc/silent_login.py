"""prompt=none (OIDC Core §3.1.2.6): a code from the browser's session, only for what the citizen approved in it.

No usable session (none, expired, too old for max_age — `max_age=0`
always, as it is `prompt=login` (OIDC Core §3.1.2.1) —, too weak for
acr_values, account not active, another citizen's than the hints name) is
login_required; a session that never
approved this client, or these scopes, is consent_required. Both go back to
the client; the citizen is never asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..collections import ACCOUNTS
from . import sessions
from .authorization import AuthorizationRequest
from .errors import ConsentRequired, LoginRequired
from .login import SOFTWARE_KEY_ONLY, grant_doc, issue_code, response_params
from .pairwise import subject_for

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth


async def answer(auth: "Auth", cookie: str | None, client: "Client", request: AuthorizationRequest, *,
                 account_id: str | None = None) -> dict[str, str]:
    """The response parameters for the client (a code, state, iss); LoginRequired or ConsentRequired otherwise.

    `account_id`: the citizen the request's hints name (hints.py); only their session may answer."""
    session_doc = await session_allowing(auth, cookie, request, account_id=account_id)

    async def work(s) -> str:
        sub = await subject_for(auth, s, client.sector, session_doc["account_id"])
        grant = grant_doc(client.client_id, session_doc["account_id"], sub, request.scope, acr=session_doc["acr"],
                          auth_time=session_doc["auth_time"], sid=session_doc["_id"], nonce=request.nonce,
                          # How the citizen authenticated when the session was opened (older sessions: a software key).
                          amr=session_doc.get("amr") or SOFTWARE_KEY_ONLY)
        code = await issue_code(auth, s, grant, request.to_doc(), tx=None)
        # A login too, without the phone: the citizen's record says so (flow `session`), with the code, in one transaction.
        await auth.audit(s, subject=session_doc["account_id"], action="login", actor="session", client_id=client.client_id,
                         flow="session", acr=grant["acr"], amr=list(grant["amr"]))
        return code

    code = await auth.transaction(work)
    return response_params({"code": code}, request, auth.settings.issuer)


def too_old(auth_time: int, now: float, max_age: int | None) -> bool:
    """Must the citizen approve again under max_age? `max_age=0` always: it means prompt=login (OIDC Core §3.1.2.1)."""
    return max_age is not None and (max_age == 0 or now - auth_time > max_age)


async def session_allowing(auth: "Auth", cookie: str | None, request: AuthorizationRequest, *,
                           account_id: str | None = None) -> dict[str, Any]:
    """The browser's session, if it already holds the citizen's approval of exactly this request."""
    back_to = request.response_target
    session_doc = await sessions.find_by_cookie(auth, cookie)
    if session_doc is None:
        raise LoginRequired("no usable session; the citizen must approve", back_to=back_to)
    if account_id is not None and session_doc["account_id"] != account_id:
        # The hints name someone else than who is logged in here (OIDC Core §3.1.2.1: login_required).
        raise LoginRequired("the session is not the hinted citizen's; the citizen must approve", back_to=back_to)
    if too_old(session_doc["auth_time"], auth.clock.now().timestamp(), request.max_age):
        raise LoginRequired("the session is older than max_age; the citizen must approve", back_to=back_to)
    if not request.accepts_acr(session_doc["acr"]):
        raise LoginRequired("the session does not meet acr_values; the citizen must approve", back_to=back_to)
    account = await auth.db[ACCOUNTS].find_one({"_id": session_doc["account_id"]})
    if account is None or account["state"] != "active":
        raise LoginRequired("no usable session; the citizen must approve", back_to=back_to)
    if not sessions.approved(session_doc, request.client_id, request.scope.split()):
        raise ConsentRequired("the citizen has not approved this client and scope in this session", back_to=back_to)
    return session_doc

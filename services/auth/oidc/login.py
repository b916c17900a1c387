"""Login journeys: the authorization in progress, the phone's approval, the authorization code.

A browser at the authorization endpoint gets a transaction (`tx`) shown as a
QR code and an app link `harbourid://authorize?tx=…`, plus a short matching
code. The citizen's app opens the link (`claim`): the transaction is bound to
that account and a `login` prompt enters the citizen's approval queue. The
device-signed decision completes the transaction (`on_decision`, in the
decision's own transaction): a code for the client, a browser session, and
`login.succeeded` / `login.failed`. The browser learns the outcome by polling
`status` with the secret only its page knows. CIBA requests (ciba.py) use the
same prompt and decision path.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.approvals import ApprovalRequest, Requester
from libs.events import CloudEvent, Outbox, agency_topic
from libs.events.audit import record_audit
from libs.events.topics import LOGINS

from ..approvals import queue
from ..clients.registry import find_client
from ..errors import Refused
from ..collections import ACCOUNTS, AUTHORIZATION_CODES, AUTHORIZATIONS
from . import sessions
from .authorization import AuthorizationRequest, redirect_url
from .metrics import AUTHORIZATIONS_STARTED, LOGIN_OUTCOMES
from .pairwise import subject_for
from .tokens import ACR_RANK, acr_of, new_opaque_token, token_hash

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth

APP_LINK_PREFIX = "harbourid://authorize?tx="
AMR = ("hwk", "user")  # proof of a hardware-held key, and the citizen's own action on the phone (RFC 8176)


def app_link(tx: str) -> str:
    return APP_LINK_PREFIX + tx


def tx_from_link(link: str) -> str:
    try:
        parts = urlsplit(link)
    except ValueError:  # e.g. an unclosed "[" in the authority
        raise Refused("unknown-link", "this is not a Harbour ID login link", 400) from None
    tx = parse_qs(parts.query).get("tx", [""])[0]
    if parts.scheme != "harbourid" or parts.netloc != "authorize" or not tx:
        raise Refused("unknown-link", "this is not a Harbour ID login link", 400)
    return tx


async def start(auth: "Auth", client: "Client", request: AuthorizationRequest) -> dict[str, Any]:
    """Open a transaction for the browser; return what its page shows."""
    tx = secrets.token_urlsafe(18)
    browser_key = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    doc = {
        "_id": tx,
        "kind": "browser",
        "client_id": client.client_id,
        "client_name": client.name,
        "request": request.to_doc(),
        "browser_key_hash": token_hash(browser_key),
        "matching_code": f"{secrets.randbelow(10000):04d}",
        "status": "pending",
        "created_at": now,
        "expires_at": now + timedelta(seconds=auth.settings.authorization_ttl_s),
    }
    # Opened by anonymous GETs, so bounded: removed (TTL index) as soon as the login expires.
    doc["purge_at"] = doc["expires_at"]
    await auth.db[AUTHORIZATIONS].insert_one(doc)
    AUTHORIZATIONS_STARTED.labels("browser").inc()
    return {"tx": tx, "browser_key": browser_key, "matching_code": doc["matching_code"], "expires_at": doc["expires_at"]}


def _prompt(tx_doc: dict[str, Any], account_id: str) -> ApprovalRequest:
    request = tx_doc["request"]
    details: dict[str, Any] = {"scopes": request["scope"].split()}
    if tx_doc.get("binding_message"):
        details["binding_message"] = tx_doc["binding_message"]
    if request.get("acr_values"):
        details["acr_values"] = request["acr_values"]
    return ApprovalRequest(
        approval_id=f"login-{tx_doc['_id']}",
        account_id=account_id,
        action="login",
        requester=Requester(service="auth", client_id=tx_doc["client_id"], client_name=tx_doc["client_name"]),
        purpose=f"Log in to {tx_doc['client_name']}",
        details=details,
        matching_code=tx_doc.get("matching_code"),
        expires_at=tx_doc["expires_at"],
    )


def check_eligible(tx_doc: dict[str, Any], account: dict[str, Any] | None) -> None:
    """Can this citizen approve this login at all (an active account of the assurance the client asked for)?"""
    if account is None or account["state"] != "active":
        raise Refused("account-inactive", "the account is not active", 403)
    required = AuthorizationRequest.from_doc(tx_doc["request"]).required_acr()
    if required and ACR_RANK[acr_of(account["assurance"])] < ACR_RANK[required]:
        raise Refused("assurance-too-low", "this service needs an identity proofed in person (plus)", 403)


async def queue_prompt(auth: "Auth", tx_doc: dict[str, Any], account: dict[str, Any]) -> str:
    """Put the login prompt straight into the citizen's queue: auth owns both sides here."""
    check_eligible(tx_doc, account)
    prompt = _prompt(tx_doc, account["_id"])
    await queue.enqueue(auth, None, prompt)
    return prompt.approval_id


async def claim(auth: "Auth", account_id: str, link: str) -> str:
    """The app opened the link: bind the transaction to this citizen and queue the prompt; return its id."""
    tx = tx_from_link(link)
    claimable = {"_id": tx, "kind": "browser", "expires_at": {"$gt": datetime.now(UTC)},
                 "$or": [{"account_id": None}, {"account_id": {"$exists": False}}, {"account_id": account_id}]}
    doc = await auth.db[AUTHORIZATIONS].find_one(claimable)
    if doc is None:
        raise Refused("link-unusable", "this login has expired or belongs to someone else", 409)
    # Eligibility first: a refused citizen must not bind the login and lock out the one who can approve it.
    account = await auth.db[ACCOUNTS].find_one({"_id": account_id})
    check_eligible(doc, account)
    doc = await auth.db[AUTHORIZATIONS].find_one_and_update(claimable, {"$set": {"account_id": account_id}}, return_document=True)
    if doc is None:
        raise Refused("link-unusable", "this login has expired or belongs to someone else", 409)
    approval_id = await queue_prompt(auth, doc, account)
    return approval_id


async def on_decision(
    auth: "Auth", session: AsyncClientSession, approval: dict[str, Any], decision: str
) -> dict[str, Any]:
    """Inside the decision's transaction: finish the login the prompt belongs to. Returns extras for the app."""
    tx = approval["_id"].removeprefix("login-")
    doc = await auth.db[AUTHORIZATIONS].find_one({"_id": tx}, session=session)
    if doc is None:
        return {}
    client_id = doc["client_id"]
    outbox = Outbox(auth.db)
    # Decided: kept only as long as the browser (or CIBA client) needs to collect the outcome.
    purge_at = max(doc["expires_at"], datetime.now(UTC) + timedelta(seconds=auth.settings.code_ttl_s))
    if decision != "approve":
        LOGIN_OUTCOMES.labels(doc["kind"], "denied").inc()
        await auth.db[AUTHORIZATIONS].update_one({"_id": tx}, {"$set": {"status": "denied", "purge_at": purge_at}}, session=session)
        failed = {"client_id": client_id, "reason": "access_denied", "flow": doc["kind"]}
        await outbox.add(session, LOGINS.name, CloudEvent(source="/auth", type="login.failed", subject=client_id, data=failed))
        # The agency's own topic gets the same outcome (no citizen identifier: the login did not happen).
        await outbox.add(session, agency_topic(client_id), CloudEvent(source="/auth", type="login.failed", subject=client_id, data=failed))
        if doc["kind"] == "browser":
            return {"redirect_to": _response_url(doc, {"error": "access_denied", "error_description": "the citizen declined"}, auth.settings.issuer)}
        return {}
    LOGIN_OUTCOMES.labels(doc["kind"], "succeeded").inc()
    account = await auth.db[ACCOUNTS].find_one({"_id": approval["account_id"]}, session=session)
    client = await _client(auth, client_id)
    sub = await subject_for(auth.db, session, auth.settings.hash_key, client.sector, account["_id"])
    auth_time = int(time.time())
    sid = secrets.token_urlsafe(16)
    grant = {
        "client_id": client_id,
        "account_id": account["_id"],
        "sub": sub,
        "scope": doc["request"]["scope"],
        "acr": acr_of(account["assurance"]),
        "amr": list(AMR),
        "auth_time": auth_time,
        "sid": sid,
        "nonce": doc["request"].get("nonce"),
    }
    # What the phone showed and the citizen approved: the only thing prompt=none may repeat later.
    await sessions.open_session(auth.db, session, sid=sid, account_id=account["_id"], auth_time=auth_time, acr=grant["acr"],
                                client_id=client_id, scopes=doc["request"]["scope"].split(), ttl_s=auth.settings.session_ttl_s)
    succeeded = {"client_id": client_id, "sub": sub, "acr": grant["acr"], "flow": doc["kind"]}
    await outbox.add(session, LOGINS.name, CloudEvent(source="/auth", type="login.succeeded", subject=client_id, data=succeeded))
    # The agency's own topic: its pairwise sub only, never the account id.
    await outbox.add(session, agency_topic(client_id), CloudEvent(source="/auth", type="login.succeeded", subject=client_id, data=succeeded))
    await record_audit(outbox, session, service="auth", subject=account["_id"], action="login", actor=approval.get("device_id", "device"),
                       client_id=client_id)
    update: dict[str, Any] = {"status": "approved", "grant": grant, "sid": sid, "purge_at": purge_at}
    extras: dict[str, Any] = {}
    if doc["kind"] == "browser":
        code = new_opaque_token()
        await auth.db[AUTHORIZATION_CODES].insert_one(
            {"_id": token_hash(code), "tx": tx, "grant": grant, "redirect_uri": doc["request"]["redirect_uri"],
             "code_challenge": doc["request"]["code_challenge"], "used_at": None,
             "expires_at": datetime.now(UTC) + timedelta(seconds=auth.settings.code_ttl_s)},
            session=session,
        )
        url = _response_url(doc, {"code": code}, auth.settings.issuer)
        update["response_url"] = url
        extras["redirect_to"] = url
    await auth.db[AUTHORIZATIONS].update_one({"_id": tx}, {"$set": update}, session=session)
    return extras


def _response_url(doc: dict[str, Any], params: dict[str, str], issuer: str) -> str:
    request = doc["request"]
    return redirect_url(request["redirect_uri"], {**params, "state": request.get("state"), "iss": issuer})


async def _client(auth: "Auth", client_id: str) -> "Client":
    client = await find_client(auth.db, client_id)
    assert client is not None
    return client


async def browser_status(auth: "Auth", tx: str, browser_key: str) -> dict[str, Any]:
    doc = await auth.db[AUTHORIZATIONS].find_one({"_id": tx, "kind": "browser"})
    if doc is None or doc["browser_key_hash"] != token_hash(browser_key):
        raise Refused("not-found", "no such login", 404)
    status = doc["status"]
    if status == "pending" and datetime.now(UTC) >= doc["expires_at"]:
        status = "expired"
    answer: dict[str, Any] = {"status": status}
    if status in ("approved", "denied"):
        answer["redirect_to"] = f"{auth.settings.issuer}/oidc/authorize/{tx}/complete?k={browser_key}"
    return answer


async def complete(auth: "Auth", tx: str, browser_key: str, previous_cookie: str | None = None) -> tuple[dict[str, Any], str | None]:
    """The browser's last step: (the client response to deliver, the session cookie to set, once)."""
    doc = await auth.db[AUTHORIZATIONS].find_one({"_id": tx, "kind": "browser"})
    if doc is None or doc["browser_key_hash"] != token_hash(browser_key) or doc["status"] not in ("approved", "denied"):
        raise Refused("not-found", "no such completed login", 404)
    request = doc["request"]
    if doc["status"] == "denied":
        params = {"error": "access_denied", "error_description": "the citizen declined"}
        return {"redirect_uri": request["redirect_uri"], "response_mode": request["response_mode"],
                "params": _with_state(params, request, auth.settings.issuer)}, None
    query = parse_qs(urlsplit(doc["response_url"]).query)
    params = {"code": query["code"][0]}
    return {"redirect_uri": request["redirect_uri"], "response_mode": request["response_mode"],
            "params": _with_state(params, request, auth.settings.issuer)}, await _session_cookie(auth, doc, previous_cookie)


async def _session_cookie(auth: "Auth", doc: dict[str, Any], previous_cookie: str | None) -> str | None:
    if doc["kind"] != "browser" or not doc.get("sid"):
        return None
    return await sessions.hand_out_cookie(auth.db, doc["sid"], previous_cookie)


def _with_state(params: dict[str, str], request: dict[str, Any], issuer: str) -> dict[str, str]:
    out = dict(params)
    if request.get("state") is not None:
        out["state"] = request["state"]
    out["iss"] = issuer
    return out


class SilentRefused(Exception):
    """prompt=none cannot be answered without the citizen: `error` is login_required or consent_required."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


async def session_allows(auth: "Auth", cookie: str | None, request: AuthorizationRequest) -> dict[str, Any]:
    """prompt=none: the browser session, if it already holds the citizen's approval of exactly this (OIDC Core §3.1.2.6).

    No usable session (none, expired, too old for max_age, too weak for acr_values, account not active) is
    login_required; a session that never approved this client, or these scopes, is consent_required.
    """
    session_doc = await sessions.find_by_cookie(auth.db, cookie)
    if session_doc is None:
        raise SilentRefused("login_required", "no usable session; the citizen must approve")
    if request.max_age is not None and time.time() - session_doc["auth_time"] > request.max_age:
        raise SilentRefused("login_required", "the session is older than max_age; the citizen must approve")
    required = request.required_acr()
    if required and ACR_RANK[session_doc["acr"]] < ACR_RANK[required]:
        raise SilentRefused("login_required", "the session does not meet acr_values; the citizen must approve")
    account = await auth.db[ACCOUNTS].find_one({"_id": session_doc["account_id"]})
    if account is None or account["state"] != "active":
        raise SilentRefused("login_required", "no usable session; the citizen must approve")
    if not sessions.approved(session_doc, request.client_id, request.scope.split()):
        raise SilentRefused("consent_required", "the citizen has not approved this client and scope in this session")
    return session_doc


async def issue_silently(auth: "Auth", client: "Client", request: AuthorizationRequest, session_doc: dict[str, Any]) -> dict[str, str]:
    """A code from an existing session (prompt=none); returns the response parameters for the client."""
    sub = await auth.transaction(
        lambda s: subject_for(auth.db, s, auth.settings.hash_key, client.sector, session_doc["account_id"])
    )
    grant = {
        "client_id": client.client_id, "account_id": session_doc["account_id"], "sub": sub, "scope": request.scope,
        "acr": session_doc["acr"], "amr": list(AMR), "auth_time": session_doc["auth_time"], "sid": session_doc["_id"],
        "nonce": request.nonce,
    }
    code = new_opaque_token()
    await auth.db[AUTHORIZATION_CODES].insert_one(
        {"_id": token_hash(code), "tx": None, "grant": grant, "redirect_uri": request.redirect_uri,
         "code_challenge": request.code_challenge, "used_at": None,
         "expires_at": datetime.now(UTC) + timedelta(seconds=auth.settings.code_ttl_s)}
    )
    return _with_state({"code": code}, request.to_doc(), auth.settings.issuer)

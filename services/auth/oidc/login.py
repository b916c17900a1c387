"""Login journeys: the authorization in progress, the phone's approval, the authorization code.

A browser at the authorization endpoint gets a transaction (`tx`) shown as a
QR code that changes every second and app links (`{issuer}/app/authorize?tx=…`,
`harbourid://authorize?tx=…`: qr_links.py), plus a short matching
code. The citizen's app opens a link (`claim`): a `login` prompt with the
id `login-<tx>` enters the citizen's approval queue — inserted only if that
id is new, so the first citizen to open the link holds the login and nobody
else can (the same citizen opening it again gets the same prompt); a
login the client named its citizen for (`login_hint`, `id_token_hint`:
hints.py) is theirs from the start, its prompt queued at once and the
citizen called to the phone when the client pushed the request (PAR). The
prompt carries what finishing the login needs (`login`: the request, the
client, its sector), so the device-signed decision completes the transaction
(`on_decision`, in the decision's own transaction) without reading it: a
code for the client, a browser session, and `login.succeeded` /
`login.failed`. Every read and write here is by `_id` (docs/architecture.md,
"What a login writes"). The browser learns the outcome by polling
`status` with the secret only its page knows. CIBA requests (ciba.py) use the
same prompt and decision path; `prompt=none` (silent_login.py) answers from
the browser's session instead.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from pymongo.asynchronous.client_session import AsyncClientSession

from libs import result_callbacks
from libs.approvals import ApprovalRequest, Requester, seal_prompt
from libs.crypto.sealing import public_jwk
from libs.events import agency_topic
from libs.events.topics import APPROVAL_REQUESTED, LOGINS
from libs.service.tracing import traceparent

from ..approvals import queue
from ..approvals.decisions import AUTH_REQUESTER
from ..clients.registry import find_client
from ..collections import ACCOUNTS, APPROVALS, AUTHORIZATION_CODES, AUTHORIZATIONS
from ..errors import AccountInactive
from . import qr_links, sessions
from .authorization import AuthorizationRequest, redirect_url
from .decided import DECIDED, OPENED, OPENED_FOR_S
from .errors import AccessDenied, AssuranceTooLow, LinkUnusable, LoginForAnotherCitizen, NoSuchLogin, ResponseTarget
from .metrics import AUTHORIZATIONS_STARTED, LOGIN_OUTCOMES
from .pairwise import subject_for
from .tokens import acr_of, new_opaque_token, token_hash
from .views import AuthorizationStatus, LoginQr

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth

APP_LINK_PREFIX = "harbourid://authorize?tx="
# RFC 8176: what a login's approval proved when the decision does not say (a prompt decided before decisions carried
# it): a software-held key. The reference app keeps its key in software; "hwk" needs a hardware key auth can verify
# (devices/protection.py), and "pin" a device registered with a PIN that says it asked for it.
SOFTWARE_KEY_ONLY = ("swk",)
NEEDS_PLUS = "this service needs an identity proofed in person (plus)"
DECLINED = {"error": "access_denied", "error_description": "the citizen declined"}


def app_link(tx: str) -> str:
    return APP_LINK_PREFIX + tx


def https_app_link(issuer: str, tx: str) -> str:
    """The same login as an https app link under the issuer (qr_links.py): the app the issuer vouches for opens it."""
    return qr_links.app_link(issuer, tx)


def tx_from_link(link: str, issuer: str = "") -> str:
    """The transaction of a login link: `harbourid://authorize?tx=…` or, under `issuer`, `{issuer}/app/authorize?tx=…`."""
    return qr_links.parse(link, issuer).tx


@dataclass(frozen=True)
class StartedLogin:
    """What the login page shows: the transaction, its browser key (the page's secret), the matching code."""

    tx: str
    browser_key: str
    matching_code: str
    expires_at: datetime
    sent_to_phone: bool = False
    started_at: datetime | None = None  # when the QR code's time counts from (qr_links.py)  # hinted and pushed: the prompt is in that citizen's queue already


async def start(auth: "Auth", client: "Client", request: AuthorizationRequest,
                account: dict[str, Any] | None = None, *, push: bool = False) -> StartedLogin:
    """Open a transaction for the browser; return what its page shows.

    `account`: the citizen the request's hints name (hints.py). The login is then theirs alone: the
    transaction names the account, so a claim by anyone else is refused. `push`: the request came from the
    client itself (PAR, client-authenticated), so the prompt also goes straight into that account's queue,
    where the app's stream shows it, and the citizen is called to the phone (notify's message), as for a CIBA
    request. A plain front-channel request is anyone's to
    make: its hint only narrows who may approve, and never puts a prompt on a phone unasked (a stranger who
    knows a citizen's sub could otherwise send them login prompts until one is approved by mistake).
    The QR code and app link work for the named citizen either way."""
    now = auth.clock.now()
    if account is not None:
        try:
            check_eligible({"request": request.to_doc()}, account)
        except AssuranceTooLow:
            raise AccessDenied(NEEDS_PLUS, back_to=request.response_target) from None
    started = StartedLogin(tx=secrets.token_urlsafe(18), browser_key=secrets.token_urlsafe(24),
                           matching_code=f"{secrets.randbelow(10000):04d}",
                           expires_at=now + timedelta(seconds=auth.settings.authorization_ttl_s),
                           sent_to_phone=account is not None and push, started_at=now)
    doc = {
        "_id": started.tx,
        "kind": "browser",
        "client_id": client.client_id,
        "client_name": client.name,
        # The client's sector (its pairwise subjects'): the decision needs it and need not read the client again.
        "sector": client.sector,
        "request": request.to_doc(),
        "browser_key_hash": token_hash(started.browser_key),
        "matching_code": started.matching_code,
        "status": "pending",
        "created_at": now,
        "expires_at": started.expires_at,
        # Opened by anonymous GETs, so bounded: removed (TTL index) as soon as the login expires.
        "purge_at": started.expires_at,
        # Where the login began: its prompt and the citizen's decision continue this trace (libs/service/tracing.py).
        "traceparent": traceparent(),
    }
    if account is not None:
        doc["account_id"] = account["_id"]
    if started.sent_to_phone:
        # The login, its prompt in the citizen's queue and the call to their phone: all or nothing.
        prompt = _prompt(doc, account["_id"])

        async def work(session: AsyncClientSession) -> None:
            await auth.db[AUTHORIZATIONS].insert_one(doc, session=session)
            await queue.insert_prompt(auth, prompt, session=session, journey=doc["traceparent"], login=finishing(doc))
            await _call_to_phone(auth, session, prompt)
        await auth.transaction(work)
    else:
        await auth.db[AUTHORIZATIONS].insert_one(doc)
    # Unchanged until the citizen decides: the phone's claim reads it from here (decided.py).
    OPENED.remember(auth.db.name, started.tx, doc, for_s=OPENED_FOR_S)
    AUTHORIZATIONS_STARTED.labels("browser").inc()
    return started


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
        requester=Requester(service=AUTH_REQUESTER, client_id=tx_doc["client_id"], client_name=tx_doc["client_name"]),
        purpose=f"Log in to {tx_doc['client_name']}",
        details=details,
        matching_code=tx_doc.get("matching_code"),
        expires_at=tx_doc["expires_at"],
    )


def check_eligible(tx_doc: dict[str, Any], account: dict[str, Any] | None) -> None:
    """Can this citizen approve this login at all (an active account of the assurance the client asked for)?"""
    if account is None or account["state"] != "active":
        raise AccountInactive("the account is not active")
    if not AuthorizationRequest.from_doc(tx_doc["request"]).accepts_acr(acr_of(account["assurance"])):
        raise AssuranceTooLow(NEEDS_PLUS)


async def queue_prompt(auth: "Auth", tx_doc: dict[str, Any], account_id: str, *, call_to_phone: bool = False) -> str:
    """Put the login prompt straight into the citizen's queue (auth owns both sides here); the caller checked eligibility.

    `call_to_phone`: the citizen is not in the app (a CIBA request: the relying party asked from elsewhere), so the
    prompt is also published in the same transaction (`_call_to_phone`)."""
    prompt = _prompt(tx_doc, account_id)
    if not call_to_phone:
        await queue.enqueue(auth, None, prompt, journey=tx_doc.get("traceparent"))
        return prompt.approval_id

    async def work(session: AsyncClientSession) -> None:
        await queue.enqueue(auth, session, prompt, journey=tx_doc.get("traceparent"))
        await _call_to_phone(auth, session, prompt)

    await auth.transaction(work)
    return prompt.approval_id


async def _call_to_phone(auth: "Auth", session: AsyncClientSession, prompt: ApprovalRequest) -> None:
    """A prompt the citizen's app did not ask for (CIBA, a hinted login the client pushed), published as
    `approval.requested`: notify's "approve on your phone" message (its clear part only; the rest sealed to auth,
    as every service's prompt is). auth's own consumer passes over its own prompts (events.py)."""
    await auth.publish(session, APPROVAL_REQUESTED, "approval.requested", prompt.approval_id,
                       seal_prompt(prompt, public_jwk(auth.settings.sealing_jwk)))


def finishing(tx_doc: dict[str, Any]) -> dict[str, Any]:
    """What finishing the login needs of its transaction, kept in its prompt (`on_decision` reads no more)."""
    return {key: tx_doc.get(key) for key in ("kind", "client_id", "sector", "request", "expires_at", "browser_key_hash")}


def _remember_decided(auth: "Auth", doc: dict[str, Any], update: dict[str, Any]) -> None:
    """Once the decision has committed, this process answers the browser and the token exchange from memory (and
    no longer the phone's claim: a late claim reads the decided document)."""
    if doc["kind"] == "browser" and doc.get("browser_key_hash"):
        decided = {**doc, **update}

        def remember() -> None:
            OPENED.forget(auth.db.name, doc["_id"])
            DECIDED.remember(auth.db.name, doc["_id"], decided, for_s=auth.settings.code_ttl_s)
        auth.after_commit(("decided", doc["_id"]), remember)


async def claim(auth: "Auth", account_id: str, link: str, *, assurance: str | None = None,
                device_id: str | None = None) -> dict[str, Any]:
    """The app opened the link: queue the login's prompt for this citizen, once; return the prompt as the app shows it.

    Two operations by `_id`: the transaction is read, the prompt inserted. `assurance` is the citizen's, known
    from the device check (its account is active); without it the account is read. A QR code's link must carry
    a time code auth made for this login and be within the QR window (QrCodeForged, QrCodeExpired: nothing
    written); the same-device links carry none."""
    opened = qr_links.parse(link, auth.settings.issuer)
    now = auth.clock.now()
    doc = OPENED.recall(auth.db.name, opened.tx) or await auth.db[AUTHORIZATIONS].find_one({"_id": opened.tx})
    if doc is None or doc["kind"] != "browser" or doc["expires_at"] <= now:
        raise LinkUnusable("this login has expired or belongs to someone else")
    # From the login page's QR code: made by auth for this login, and drawn within the QR window (nothing is written).
    qr_links.check(opened, qr_key(auth), doc["created_at"], now, auth.settings.qr_window_s)
    if doc.get("account_id") not in (None, account_id):
        # Hinted (hints.py): asked for one citizen, whom this is not. Nothing is written.
        raise LoginForAnotherCitizen("this login was asked for another citizen; only their phone can approve it")
    account = ({"_id": account_id, "state": "active", "assurance": assurance} if assurance
               else await auth.db[ACCOUNTS].find_one({"_id": account_id}))
    # Eligibility first: a refused citizen must not hold the login and lock out the one who can approve it.
    try:
        check_eligible(doc, account)
    except (AccountInactive, AssuranceTooLow) as refused:
        # A failed login on the citizen's record (their data tracker): which service, why; nothing else is written.
        why = refused.slug
        await auth.transaction(lambda s: auth.audit(
            s, subject=account_id, action="login", actor=device_id or "device", outcome="refused", client_id=doc["client_id"],
            flow=doc["kind"], reason=why))
        raise
    prompt = _prompt(doc, account_id)
    stored = await queue.insert_prompt(auth, prompt, journey=doc.get("traceparent"), login=finishing(doc))
    if stored is None:
        # Opened before: by this citizen (the same prompt again) or by someone else (theirs alone).
        stored = await auth.db[APPROVALS].find_one({"_id": prompt.approval_id})
        if stored is None or stored["account_id"] != account_id:
            raise LinkUnusable("this login has expired or belongs to someone else")
    return queue.prompt_view(stored, now, auth.field_cipher)


# --- the citizen decided ---------------------------------------------------------


async def on_decision(
    auth: "Auth", session: AsyncClientSession, approval: dict[str, Any], decision: str
) -> dict[str, Any]:
    """Inside the decision's transaction: finish the login the prompt belongs to. Returns extras for the app."""
    tx = approval["_id"].removeprefix("login-")
    if approval.get("login"):
        doc = {**approval["login"], "_id": tx}
    else:  # a prompt queued before prompts carried their login (or a CIBA request's): read the transaction
        doc = await auth.db[AUTHORIZATIONS].find_one({"_id": tx}, session=session)
    if doc is None:
        return {}
    # Decided: kept only as long as the browser (or CIBA client) needs to collect the outcome.
    purge_at = max(doc["expires_at"], auth.clock.now() + timedelta(seconds=auth.settings.code_ttl_s))
    if decision != "approve":
        return await _declined(auth, session, doc, approval, purge_at)
    return await _approved(auth, session, doc, approval, purge_at)


async def _to_agency(auth: "Auth", session: AsyncClientSession, client_id: str, event_type: str, data: dict[str, Any]) -> None:
    """A copy of the outcome on the client's own topic, if it subscribed (`agency_events`; the client from memory)."""
    client = await find_client(auth.db, client_id)
    if client is not None and client.metadata.agency_events:
        await auth.publish(session, agency_topic(client_id), event_type, client_id, data)


async def _call_back(auth: "Auth", session: AsyncClientSession, doc: dict[str, Any], event: str, status: str, *,
                     sub: str | None = None, error: str | None = None) -> None:
    """A CIBA login's outcome to the client's callback URL (libs/result_callbacks), queued in this transaction when it
    registered one: `request_id` is the `auth_req_id` it polls with. A browser login's outcome goes by its redirect."""
    if doc["kind"] != "ciba":
        return
    client = await find_client(auth.db, doc["client_id"])
    if client is None or not client.metadata.callback_urls:
        return
    await result_callbacks.record(auth.db, session, {"_id": doc["client_id"], "callback_urls": client.metadata.callback_urls},
                                  auth.clock.now(), event=event, request_id=doc["_id"], status=status, sub=sub, error=error)


async def _declined(auth: "Auth", session: AsyncClientSession, doc: dict[str, Any], approval: dict[str, Any],
                    purge_at: datetime) -> dict[str, Any]:
    LOGIN_OUTCOMES.labels(doc["kind"], "denied").inc()
    await auth.db[AUTHORIZATIONS].update_one({"_id": doc["_id"]}, {"$set": {"status": "denied", "purge_at": purge_at}}, session=session)
    _remember_decided(auth, doc, {"status": "denied"})
    client_id = doc["client_id"]
    failed = {"client_id": client_id, "reason": "access_denied", "flow": doc["kind"]}
    await auth.publish(session, LOGINS, "login.failed", client_id, failed)
    # The agency's own topic gets the same outcome (no citizen identifier: the login did not happen).
    await _to_agency(auth, session, client_id, "login.failed", failed)
    await _call_back(auth, session, doc, "login.denied", "denied", error="access_denied")
    # The citizen's own record (their data tracker): which service they refused, how it was asked.
    await auth.audit(session, subject=approval["account_id"], action="login", actor=approval.get("device_id", "device"),
                     outcome="denied", client_id=client_id, flow=doc["kind"], reason="access_denied")
    if doc["kind"] == "browser":
        return {"redirect_to": _response_url(doc, DECLINED, auth.settings.issuer)}
    return {}


async def _approved(
    auth: "Auth", session: AsyncClientSession, doc: dict[str, Any], approval: dict[str, Any], purge_at: datetime
) -> dict[str, Any]:
    LOGIN_OUTCOMES.labels(doc["kind"], "succeeded").inc()
    client_id = doc["client_id"]
    if approval.get("device_assurance"):  # known from the device check, which found the account active
        account = {"_id": approval["account_id"], "assurance": approval["device_assurance"]}
    else:
        account = await auth.db[ACCOUNTS].find_one({"_id": approval["account_id"]}, session=session)
    sector = doc.get("sector")
    if sector is None:
        client = await find_client(auth.db, client_id)
        assert client is not None
        sector = client.sector
    sub = await subject_for(auth, session, sector, account["_id"])
    sid = secrets.token_urlsafe(16)
    grant = grant_doc(client_id, account["_id"], sub, doc["request"]["scope"], acr=acr_of(account["assurance"]),
                      auth_time=int(auth.clock.now().timestamp()), sid=sid, nonce=doc["request"].get("nonce"),
                      amr=approval.get("amr") or SOFTWARE_KEY_ONLY)
    # What the phone showed and the citizen approved: the only thing prompt=none may repeat later. A browser's
    # session is opened with its cookie when the browser completes the login (complete); a CIBA login's here.
    if doc["kind"] != "browser":
        await sessions.open_session(auth, session, sid=sid, account_id=account["_id"], auth_time=grant["auth_time"],
                                    acr=grant["acr"], client_id=client_id, scopes=doc["request"]["scope"].split(),
                                    amr=grant["amr"])
    succeeded = {"client_id": client_id, "sub": sub, "acr": grant["acr"], "flow": doc["kind"]}
    await auth.publish(session, LOGINS, "login.succeeded", client_id, succeeded)
    # The agency's own topic: its pairwise sub only, never the account id.
    await _to_agency(auth, session, client_id, "login.succeeded", succeeded)
    await _call_back(auth, session, doc, "login.completed", "approved", sub=sub)
    await auth.audit(session, subject=account["_id"], action="login", actor=approval.get("device_id", "device"), client_id=client_id,
                     flow=doc["kind"], acr=grant["acr"], amr=list(grant["amr"]))
    update: dict[str, Any] = {"status": "approved", "grant": grant, "sid": sid, "purge_at": purge_at}
    extras: dict[str, Any] = {}
    if doc["kind"] == "browser":
        # The code lives in the login's own document (no insert of its own): `<tx>.<secret>`, stored as a hash.
        code, update["code"] = login_code(auth, doc["_id"], grant, doc["request"])
        # Kept an hour past the code's expiry, like a code of its own: a late second use still revokes its tokens.
        update["purge_at"] = max(purge_at, update["code"]["expires_at"] + CODE_KEPT_PAST_EXPIRY)
        update["response_url"] = extras["redirect_to"] = _response_url(doc, {"code": code}, auth.settings.issuer)
    await auth.db[AUTHORIZATIONS].update_one({"_id": doc["_id"]}, {"$set": update}, session=session)
    _remember_decided(auth, doc, update)
    return extras


# As long as the authorization_codes collection keeps a code past its expiry (its TTL index: an hour).
CODE_KEPT_PAST_EXPIRY = timedelta(hours=1)
LOGIN_CODE_SEPARATOR = "."


def login_code(auth: "Auth", tx: str, grant: dict[str, Any], request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A browser login's authorization code and its record in the login's document (the same fields as a code of its
    own: bound to the redirect URI and PKCE challenge, single use). The code names its login, so redeeming it reads
    that document by `_id`; only the hash of the whole code is stored."""
    code = f"{tx}{LOGIN_CODE_SEPARATOR}{new_opaque_token()}"
    return code, {"hash": token_hash(code), "grant": grant, "redirect_uri": request["redirect_uri"],
                  "code_challenge": request["code_challenge"], "dpop_jkt": request.get("dpop_jkt"), "used_at": None,
                  "expires_at": auth.clock.now() + timedelta(seconds=auth.settings.code_ttl_s)}


def grant_doc(client_id: str, account_id: str, sub: str, scope: str, *, acr: str, auth_time: int, sid: str,
              nonce: str | None, amr: list[str] | tuple[str, ...] = SOFTWARE_KEY_ONLY) -> dict[str, Any]:
    """Who authenticated, to which client, how (`amr`: what the approval proved): what a code (and its tokens) carries."""
    return {"client_id": client_id, "account_id": account_id, "sub": sub, "scope": scope, "acr": acr, "amr": list(amr),
            "auth_time": auth_time, "sid": sid, "nonce": nonce}


async def issue_code(
    auth: "Auth", session: AsyncClientSession | None, grant: dict[str, Any], request: dict[str, Any], *, tx: str | None
) -> str:
    """An authorization code for `grant`, bound to the request's redirect URI and PKCE challenge; stored as a hash."""
    code = new_opaque_token()
    await auth.db[AUTHORIZATION_CODES].insert_one(
        {"_id": token_hash(code), "tx": tx, "grant": grant, "redirect_uri": request["redirect_uri"],
         "code_challenge": request["code_challenge"], "dpop_jkt": request.get("dpop_jkt"), "used_at": None,
         "expires_at": auth.clock.now() + timedelta(seconds=auth.settings.code_ttl_s)},
        session=session,
    )
    return code


def _response_url(doc: dict[str, Any], params: dict[str, str], issuer: str) -> str:
    request = doc["request"]
    return redirect_url(request["redirect_uri"], {**params, "state": request.get("state"), "iss": issuer})


# --- the browser collects the outcome ------------------------------------------------


async def _browser_login(auth: "Auth", tx: str) -> dict[str, Any] | None:
    """The browser login `tx`: decided in this process (from memory), else its document."""
    return DECIDED.recall(auth.db.name, tx) or await auth.db[AUTHORIZATIONS].find_one({"_id": tx, "kind": "browser"})


async def browser_status(auth: "Auth", tx: str, browser_key: str, *, qr: bool = False) -> AuthorizationStatus:
    """The login's status for its page; `qr`: while pending, also the QR code of this second (what it says and its SVG)."""
    doc = await _browser_login(auth, tx)
    if doc is None or doc["browser_key_hash"] != token_hash(browser_key):
        raise NoSuchLogin("no such login")
    status = doc["status"]
    now = auth.clock.now()
    if status == "pending" and now >= doc["expires_at"]:
        status = "expired"
    if status in ("approved", "denied"):
        return AuthorizationStatus(status=status, redirect_to=f"{auth.settings.issuer}/oidc/authorize/{tx}/complete?k={browser_key}")
    if status == "pending" and qr:
        return AuthorizationStatus(status=status, qr=current_qr(auth, tx, doc["created_at"], now))
    return AuthorizationStatus(status=status)


def qr_key(auth: "Auth") -> bytes:
    return qr_links.qr_key(auth.settings.hash_key)


def current_qr_link(auth: "Auth", tx: str, started_at: datetime | None, now: datetime) -> str:
    """What the login page's QR code says in this second of login `tx`: the https link, `t` and its HMAC."""
    return qr_links.qr_link(auth.settings.issuer, qr_key(auth), tx, qr_links.elapsed_s(started_at or now, now))


def current_qr(auth: "Auth", tx: str, started_at: datetime, now: datetime) -> LoginQr:
    """The login page's QR code in this second of login `tx` (qr_links.py): its link and `t`; the page draws it."""
    return LoginQr(link=current_qr_link(auth, tx, started_at, now), t=qr_links.elapsed_s(started_at, now))


@dataclass(frozen=True)
class Completed:
    """A decided login's last step: the response for the client, and the session cookie to set (once)."""

    target: ResponseTarget
    params: dict[str, str]
    cookie: str | None = None


async def complete(auth: "Auth", tx: str, browser_key: str, previous_cookie: str | None = None) -> Completed:
    doc = await _browser_login(auth, tx)
    if doc is None or doc["browser_key_hash"] != token_hash(browser_key) or doc["status"] not in ("approved", "denied"):
        raise NoSuchLogin("no such completed login")
    request = AuthorizationRequest.from_doc(doc["request"])
    if doc["status"] == "denied":
        return Completed(request.response_target, response_params(DECLINED, request, auth.settings.issuer))
    code = parse_qs(urlsplit(doc["response_url"]).query)["code"][0]
    cookie = await sessions.open_with_cookie(auth, doc["grant"], previous_cookie) if doc.get("sid") else None
    return Completed(request.response_target, response_params({"code": code}, request, auth.settings.issuer), cookie)


def response_params(params: dict[str, str], request: AuthorizationRequest, issuer: str) -> dict[str, str]:
    """An authorization response's parameters: these, the request's state (if any) and the issuer (RFC 9207)."""
    out = dict(params)
    if request.state is not None:
        out["state"] = request.state
    out["iss"] = issuer
    return out

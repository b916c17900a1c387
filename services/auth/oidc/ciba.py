"""OpenID Connect Client-Initiated Backchannel Authentication (CIBA Core 1.0), poll mode.

A call centre or kiosk client names the citizen by the pairwise `sub` it
already knows (`login_hint`) or by an ID token it received for them
(`id_token_hint`, checked as at the authorization endpoint: hints.py); the citizen gets the same login prompt on the
phone, with the client's `binding_message`; the client polls the token
endpoint with `auth_req_id` until the decision is in.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from libs.service.validation import check_display_text

from ..collections import ACCOUNTS, AUTHORIZATIONS
from .authorization import AuthorizationRequest
from .errors import (
    AccessDenied, AuthorizationPending, CitizenCannotApprove, ExpiredToken, InvalidBindingMessage, InvalidGrant, InvalidRequest,
    InvalidScope, SlowDown, UnknownUserId,
)
from .hints import HintRefused, id_token_sub
from .login import NEEDS_PLUS, queue_prompt
from .metrics import AUTHORIZATIONS_STARTED
from .pairwise import account_for
from .token_response import grant_from, token_response
from .tokens import acr_of
from .views import BackchannelAuthenticationResponse, TokenResponse

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth

POLL_INTERVAL_S = 2


async def backchannel_authorize(auth: "Auth", client: "Client", form: dict[str, str]) -> BackchannelAuthenticationResponse:
    scopes = form.get("scope", "").split()
    if "openid" not in scopes:
        raise InvalidScope("scope must include openid")
    if not set(scopes) <= client.scopes:  # offline_access too: only if registered for the client
        raise InvalidScope("the client may not ask for these scopes")
    hints = [h for h in ("login_hint", "login_hint_token", "id_token_hint") if form.get(h)]
    if hints not in (["login_hint"], ["id_token_hint"]):
        raise InvalidRequest("exactly one hint is required: login_hint (the citizen's sub at this client) or id_token_hint")
    binding_message = _binding_message(form)
    if hints == ["id_token_hint"]:
        # An ID token this issuer signed for this client, expired or not (hints.py, as at the authorization endpoint).
        try:
            sub = await id_token_sub(auth, client, form["id_token_hint"])
        except HintRefused as exc:
            raise InvalidRequest(str(exc)) from None
    else:
        sub = form["login_hint"]
    account_id = await account_for(auth.db, sub, client.sector)
    account = await auth.db[ACCOUNTS].find_one({"_id": account_id}) if account_id else None
    if account is None or account["state"] != "active":
        raise UnknownUserId("no active citizen with this sub at this client")
    request = AuthorizationRequest(
        client_id=client.client_id, redirect_uri="", scope=" ".join(dict.fromkeys(scopes)), state=None, nonce=None,
        code_challenge="", acr_values=tuple(form.get("acr_values", "").split()),
    )
    if not request.accepts_acr(acr_of(account["assurance"])):
        raise CitizenCannotApprove(NEEDS_PLUS)
    request_id = secrets.token_urlsafe(24)
    now = auth.clock.now()
    expires_in = _expires_in(form, auth.settings.authorization_ttl_s)
    doc = {
        "_id": request_id,
        "kind": "ciba",
        "client_id": client.client_id,
        "client_name": client.name,
        "request": request.to_doc(),
        "account_id": account["_id"],
        "status": "pending",
        "created_at": now,
        "expires_at": now + timedelta(seconds=expires_in),
        "purge_at": now + timedelta(seconds=expires_in),
        "next_poll_at": 0,
    }
    await auth.db[AUTHORIZATIONS].insert_one(doc)
    try:
        # The binding message is needed only on the phone: it is kept in the prompt alone, sealed (approvals/queue.py).
        # The citizen is not in the app (the relying party asked from elsewhere): "approve on your phone" (notify).
        await queue_prompt(auth, {**doc, "binding_message": binding_message or None}, account["_id"], call_to_phone=True)
    except Exception:
        await auth.db[AUTHORIZATIONS].delete_one({"_id": request_id})
        raise
    AUTHORIZATIONS_STARTED.labels("ciba").inc()
    return BackchannelAuthenticationResponse(auth_req_id=request_id, expires_in=expires_in, interval=POLL_INTERVAL_S)


def _binding_message(form: dict[str, str]) -> str:
    """Shown on the phone: at most 40 characters, under the shared display-text rule (no control or format characters)."""
    binding_message = form.get("binding_message", "")
    if len(binding_message) > 40:
        raise InvalidBindingMessage("binding_message is at most 40 characters")
    try:
        check_display_text(binding_message)
    except ValueError as exc:
        raise InvalidBindingMessage(f"binding_message {exc}") from None
    return binding_message


def _expires_in(form: dict[str, str], longest_s: int) -> int:
    """The client's requested_expiry, within our own limit."""
    requested = form.get("requested_expiry", "")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return min(int(requested) if requested.isascii() and requested.isdigit() else longest_s, longest_s)


async def poll(auth: "Auth", client: "Client", form: dict[str, str], *, jkt: str | None = None) -> TokenResponse:
    request_id = form.get("auth_req_id")
    if not request_id:
        raise InvalidRequest("auth_req_id is required")
    collection = auth.db[AUTHORIZATIONS]
    doc = await collection.find_one({"_id": request_id, "kind": "ciba", "client_id": client.client_id})
    if doc is None:
        raise InvalidGrant("unknown auth_req_id")
    now = auth.clock.now().timestamp()
    # Polling faster than the interval is answered with slow_down (CIBA §11).
    too_fast = await collection.update_one(
        {"_id": request_id, "next_poll_at": {"$gt": now}}, {"$inc": {"next_poll_at": 5}}
    )
    if too_fast.modified_count:
        raise SlowDown("poll less often")
    await collection.update_one({"_id": request_id}, {"$set": {"next_poll_at": now + POLL_INTERVAL_S - 0.5}})
    if doc["status"] == "denied":
        raise AccessDenied("the citizen declined")
    if doc["status"] == "redeemed":
        raise InvalidGrant("the tokens for this request were already issued")
    if doc["status"] == "pending":
        if auth.clock.now() >= doc["expires_at"]:
            raise ExpiredToken("the request expired before the citizen answered")
        raise AuthorizationPending("the citizen has not answered yet")
    redeemed = await collection.update_one({"_id": request_id, "status": "approved"}, {"$set": {"status": "redeemed"}})
    if redeemed.modified_count != 1:
        raise InvalidGrant("the tokens for this request were already issued")
    answer, _ = await token_response(auth, grant_from(doc["grant"]), id_token=True, jkt=jkt)
    return answer

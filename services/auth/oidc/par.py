"""RFC 9126 Pushed Authorization Requests: the client posts the request first, the browser carries a reference."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from ..collections import PUSHED_REQUESTS
from . import dpop, request_objects
from .authorization import parse_request
from .errors import InvalidDPoPProof, InvalidRequestUri
from .hints import hinted_account
from .views import PushedAuthorizationResponse

if TYPE_CHECKING:
    from ..clients.registry import Client
    from ..context import Auth

URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
LIFETIME_S = 90
# What authenticated the client is not part of the request it pushed (nor a reference to another one).
NOT_PUSHED = frozenset({"client_secret", "client_assertion", "client_assertion_type", "request_uri"})


async def push(auth: "Auth", client: "Client", form: dict[str, str], dpop_proofs: list[str] = ()) -> PushedAuthorizationResponse:
    """Check the request as the authorization endpoint will (its errors answered as JSON here), then keep it."""
    params = {k: v for k, v in form.items() if k not in NOT_PUSHED}
    # A signed request object (RFC 9101): its claims are what is pushed, the form's other parameters are ignored.
    params = await request_objects.pushed(auth, client, params)
    params["client_id"] = client.client_id
    # RFC 9449 §10.1: a DPoP proof with the push binds the code to its key (dpop_jkt), so only that key redeems it.
    jkt = dpop.pushed_request_key(auth, list(dpop_proofs))
    if jkt is not None:
        if params.get("dpop_jkt") not in (None, jkt):
            raise InvalidDPoPProof("dpop_jkt names another key than the DPoP proof's")
        params["dpop_jkt"] = jkt
    # The hints too (hints.py): a pushed request naming no citizen of this client is refused now, not at the browser.
    await hinted_account(auth, client, parse_request(client, params))
    reference = secrets.token_urlsafe(24)
    await auth.db[PUSHED_REQUESTS].insert_one(
        {"_id": reference, "client_id": client.client_id, "params": params,
         "expires_at": auth.clock.now() + timedelta(seconds=LIFETIME_S)}
    )
    return PushedAuthorizationResponse(request_uri=URN_PREFIX + reference, expires_in=LIFETIME_S)


async def redeem(auth: "Auth", request_uri: str, client_id: str | None) -> dict[str, str]:
    """The pushed parameters, once; only for the client that pushed them (RFC 9126 §4)."""
    if not request_uri.startswith(URN_PREFIX):
        raise InvalidRequestUri("request_uri must come from the pushed authorization request endpoint")
    doc = await auth.db[PUSHED_REQUESTS].find_one_and_delete(
        {"_id": request_uri[len(URN_PREFIX):], "expires_at": {"$gt": auth.clock.now()}}
    )
    if doc is None or doc["client_id"] != client_id:
        raise InvalidRequestUri("the request_uri is unknown, used or expired")
    return {**doc["params"], "client_id": doc["client_id"]}

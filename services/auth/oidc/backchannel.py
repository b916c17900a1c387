"""OpenID Connect Back-Channel Logout 1.0: relying parties are told, server to server, that a citizen's session ended.

A relying party that registered a `backchannel_logout_uri` gets a Logout
Token (§2.4) for each of its sessions that ends: the citizen logs out
(RP-initiated logout), revokes a device, is suspended, revoked or closed, or a
kiosk replaces their phones. "Its sessions" are the browser/CIBA sessions at
the issuer the client was approved in (sessions.py) and the client's live
refresh-token grants (each carries the `sid` of the login that issued it).

Delivery is a transactional outbox: `queue_logouts` writes one document per
(client, sid) into `backchannel_logouts` inside the transaction of the change
itself (a change that rolls back tells nobody; one that commits is told for
certain), and `send_due` — auth's sender loop, `run` — signs and POSTs them
with retries and back-off (libs/retry_queue.py). The token is signed when it
is sent, with auth's current token-signing key (the JWKS at /oidc/jwks):
`typ` `logout+jwt`, claims `iss`, `aud` (the client id), `iat`, `exp`
(`backchannel_logout_token_ttl_s`), `jti` (the delivery's id, the same on
every attempt, so the relying party can drop a repeat), `sub` (the client's
pairwise subject), `sid` and `events`, never a `nonce`. It is POSTed as
`application/x-www-form-urlencoded` `logout_token=...` to the URL registered
(SSRF-checked at registration and again at every connection, libs/outbound);
a 2xx answer ends it, anything else (an error status, a refused connection, a
timeout) is tried again after backoff * 2**(n-1) s, and after max_attempts
it is given up (a metric, a log line).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlencode

from prometheus_client import Counter, Gauge
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.backbone import ServiceContext
from libs.background import repeat_passes
from libs.outbound import Outbound, OutboundError
from libs.retry_queue import Backoff, Failure, RetryQueue
from libs.service.logging import get_logger

from ..clients.registry import find_client
from ..collections import BACKCHANNEL_LOGOUTS, REFRESH_TOKENS, SESSIONS
from .pairwise import pairwise_sub

if TYPE_CHECKING:
    from ..context import Auth

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"
DELIVERED, GIVEN_UP = "delivered", "given_up"

LOGOUT_DELIVERIES = Counter(
    "harbour_backchannel_logout_deliveries_total",
    "Back-channel logout tokens posted to relying parties, by outcome (sent, retry, failed: given up).",
    ["outcome"],
)
LOGOUT_BACKLOG = Gauge(
    "harbour_backchannel_logout_backlog",
    "Back-channel logout tokens waiting to be delivered (pending or retrying).",
)
log = get_logger("harbour.auth.backchannel")


async def queue_logouts(ctx: ServiceContext, session: AsyncClientSession, account_id: str, *, reason: str,
                        sids: Iterable[str] | None = None) -> int:
    """Inside the caller's transaction, before it ends the sessions or revokes the grants: one logout token to send
    for each (client with a backchannel_logout_uri, sid) of the account's sessions and live refresh-token grants —
    all of them, or only those of `sids`. Returns how many were queued."""
    db, now = ctx.db, ctx.clock.now()
    wanted_sids = None if sids is None else [s for s in sids if s]
    if wanted_sids is not None and not wanted_sids:
        return 0
    session_filter: dict[str, Any] = {"account_id": account_id}
    grant_filter: dict[str, Any] = {"grant.account_id": account_id, "status": {"$ne": "revoked"}}
    if wanted_sids is not None:
        session_filter["_id"] = {"$in": wanted_sids}
        grant_filter["grant.sid"] = {"$in": wanted_sids}
    # (client_id, sid) -> the sub the client knows (None: computed from its sector below).
    targets: dict[tuple[str, str], str | None] = {}
    for doc in await db[SESSIONS].find(session_filter, {"approved": 1}, session=session).to_list():
        for approval in doc.get("approved", []):
            targets.setdefault((approval["client_id"], doc["_id"]), None)
    for doc in await db[REFRESH_TOKENS].find(grant_filter, {"grant": 1}, session=session).to_list():
        grant = doc.get("grant") or {}
        if grant.get("client_id") and grant.get("sid"):
            targets[(grant["client_id"], grant["sid"])] = grant.get("sub")
    queued = []
    for (client_id, sid), sub in sorted(targets.items()):
        client = await find_client(db, client_id)
        if client is None or not client.metadata.backchannel_logout_uri:
            continue
        queued.append({
            "_id": secrets.token_urlsafe(16), "client_id": client_id, "url": client.metadata.backchannel_logout_uri,
            "sub": sub or pairwise_sub(ctx.settings.hash_key, client.sector, account_id), "sid": sid,
            "account_id": account_id, "reason": reason, "created_at": now, **RetryQueue.queued(now)})
    if queued:
        await db[BACKCHANNEL_LOGOUTS].insert_many(queued, session=session)
        # auth's own sender goes at once when the change commits (an operator command's: at its next poll).
        wake = getattr(ctx, "backchannel_wake", None)
        if wake is not None:
            ctx.after_commit("backchannel-logout", wake.set)
    return len(queued)


def logout_queue(auth: "Auth") -> RetryQueue:
    settings = auth.settings
    return RetryQueue(auth.db[BACKCHANNEL_LOGOUTS],
                      Backoff(settings.backchannel_logout_backoff_s, settings.backchannel_logout_max_attempts),
                      done=DELIVERED, given_up=GIVEN_UP, lease_s=settings.backchannel_logout_timeout_s * 2)


def logout_claims(doc: dict[str, Any], now: int, ttl_s: int) -> dict[str, Any]:
    """The Logout Token's claims (§2.4) but `iss`, which the signer adds: no nonce, the event, sub and sid."""
    return {"aud": doc["client_id"], "iat": now, "exp": now + ttl_s, "jti": doc["_id"], "sub": doc["sub"],
            "sid": doc["sid"], "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}


async def _post(outbound: Outbound, url: str, token: str, timeout_s: float) -> str | None:
    """None when the relying party took it (2xx), else why not (its status, or the outbound refusal/failure)."""
    try:
        answer = await outbound.request("POST", url, data=urlencode({"logout_token": token}), timeout_s=timeout_s, max_bytes=16 * 1024,
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    except OutboundError as exc:
        return exc.reason
    return None if answer.ok else f"answered {answer.status}"


async def send_due(auth: "Auth", outbound: Outbound, limit: int = 50) -> int:
    """Claim due logout tokens (safe with several auth processes), post them concurrently, record each outcome."""
    queue = logout_queue(auth)
    claimed = await queue.claim_due(auth.clock.now(), limit)

    async def attempt(doc: dict[str, Any]) -> None:
        # The real time: the relying party checks iat/exp against its own clock.
        claims = logout_claims(doc, int(time.time()), auth.settings.backchannel_logout_token_ttl_s)
        token = await auth.signer.sign(claims, typ=LOGOUT_TOKEN_TYPE)
        error = await _post(outbound, doc["url"], token, auth.settings.backchannel_logout_timeout_s)
        if error is None:
            LOGOUT_DELIVERIES.labels("sent").inc()
            await queue.succeeded([doc["_id"]], {"delivered_at": auth.clock.now()})
        elif await queue.failed(Failure(doc, error), auth.clock.now()):
            LOGOUT_DELIVERIES.labels("failed").inc()
            log.warning("back-channel logout given up", delivery_id=doc["_id"], client_id=doc["client_id"],
                        attempts=doc["attempts"], error=error)
        else:
            LOGOUT_DELIVERIES.labels("retry").inc()

    await asyncio.gather(*(attempt(d) for d in claimed))
    return len(claimed)


async def run(auth: "Auth", wake: asyncio.Event, outbound: Outbound | None = None) -> None:
    """auth's sender: due logout tokens at once after a change in this process (`wake`), else every poll_s (up to
    libs/background's idle cap while there is nothing to send)."""
    outbound = outbound or Outbound()  # relying parties' URLs are outside parties': SSRF-guarded
    queue = logout_queue(auth)

    async def one_pass() -> int:
        busy = await send_due(auth, outbound)
        LOGOUT_BACKLOG.set(await queue.backlog())
        return busy

    await repeat_passes(one_pass, interval_s=auth.settings.backchannel_logout_poll_s, what="back-channel logout pass",
                        wake=wake)

"""Result callbacks: a relying party that registered `callback_urls` is told, signed, when its request has an outcome.

auth (a CIBA login approved or declined), formfill (a release is ready, or
the citizen declined) and signing (a signature is done, or the request
closed unsigned) call `record` in the transaction that writes the outcome: a document in the service's
`result_callbacks` collection (outbox-style — the outcome and its callback
commit together or not at all). `run_sender` (each service's background
task) claims the due ones (libs/retry_queue.py: exclusive claims, safe with
several replicas), signs each at the moment it is sent and POSTs it to the
client's first callback URL through libs/outbound (the SSRF rules apply at
every call, against the address actually connected to).

The body is a compact JWS (`application/jwt`, ES256, header `typ`
`result-callback+jwt` and the `kid` of a key the service publishes: auth
/oidc/jwks, formfill /v1/formfill/jwks, signing /v1/signing/jwks) with
claims `iss` (the issuer, `<issuer>/v1/formfill` or `<issuer>/v1/signing`),
`aud` (the client id), `iat`, `exp` (iat + 5 minutes), `jti` (the callback id: deduplicate on it),
`event`, `request_id`, `status` (what polling the request shows), `sub` (the
citizen's pairwise subject, when the request has a citizen) and `error` for
an outcome polling shows with one. No personal data: the relying party
fetches the result as before — polling stays.

A 2xx answer ends it; anything else (another status, a refused or failed
connection, a refused address) is retried after `backoff_s`, then twice as
long each time, and given up after `attempts` tries
(HARBOUR_FORMFILL_RESULT_CALLBACK_ATTEMPTS / _BACKOFF_S and the same for
SIGNING and AUTH: 6 and 1 s by default, so about a minute of retries).
Counted in `harbour_result_callbacks_total{service, outcome}` (delivered,
retried, given_up).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from prometheus_client import Counter
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.background import repeat_passes, wake_up
from libs.clock import Clock
from libs.outbound import Outbound, OutboundError
from libs.retry_queue import Backoff, Failure, RetryQueue
from libs.service.logging import get_logger
from libs.store import index
from libs.tokens.keystore import TokenSigner

RESULT_CALLBACKS = "result_callbacks"
INDEXES = (index(RESULT_CALLBACKS, "state", "next_attempt_at"),
           # delivered or given up, a callback is kept a week (its ids and outcome only), then dropped
           index(RESULT_CALLBACKS, "created_at", name="result_callbacks_ttl", expire_after_s=7 * 24 * 3600))
TYP = "result-callback+jwt"
# The senders' loop, woken by `record` (libs/background.wake_up): a callback goes out at once, not at the next poll.
SENDER = "result callbacks"
TOKEN_TTL_S = 300
TIMEOUT_S = 5.0
ATTEMPTS = Counter("harbour_result_callbacks_total", "Result callbacks to relying parties, by service and outcome "
                   "(delivered, retried, given_up).", ["service", "outcome"])
log = get_logger("harbour.result_callbacks")


async def record(db: AsyncDatabase, session: AsyncClientSession, client: Mapping[str, Any] | None, now: datetime, *,
                 event: str, request_id: str, status: str, sub: str | None = None, error: str | None = None) -> str | None:
    """In the outcome's transaction: queue the callback if the client (its projection) registered a URL; its id, else None."""
    urls = (client or {}).get("callback_urls") or []
    if not urls:
        return None
    callback_id = f"cb-{secrets.token_urlsafe(12)}"
    payload: dict[str, Any] = {"event": event, "request_id": request_id, "status": status}
    if sub is not None:
        payload["sub"] = sub
    if error is not None:
        payload["error"] = error
    await db[RESULT_CALLBACKS].insert_one({
        "_id": callback_id, "client_id": client["_id"], "url": urls[0], "payload": payload, "created_at": now,
        **RetryQueue.queued(now)}, session=session)
    wake_up(SENDER)
    return callback_id


@dataclass
class ResultCallbacks:
    service: str  # "auth", "formfill" or "signing": the metric's label
    db: AsyncDatabase
    signer: TokenSigner
    clock: Clock
    attempts: int = 6
    backoff_s: float = 1.0
    timeout_s: float = TIMEOUT_S

    @property
    def queue(self) -> RetryQueue:
        return RetryQueue(self.db[RESULT_CALLBACKS], Backoff(self.backoff_s, self.attempts), done="delivered",
                          given_up="given_up", lease_s=self.timeout_s * 2)

    async def _token(self, doc: dict[str, Any]) -> str:
        now = int(time.time())  # the real time: the relying party checks iat/exp against its own clock
        return await self.signer.sign({"aud": doc["client_id"], "iat": now, "exp": now + TOKEN_TTL_S, "jti": doc["_id"],
                                       **doc["payload"]}, typ=TYP)

    async def send_due(self, outbound: Outbound, limit: int = 50) -> int:
        """Claim the due callbacks, POST them concurrently, record each outcome; how many were claimed."""
        queue = self.queue
        claimed = await queue.claim_due(self.clock.now(), limit)

        async def attempt(doc: dict[str, Any]) -> None:
            try:
                answer = await outbound.request("POST", doc["url"], data=await self._token(doc),
                                                headers={"Content-Type": "application/jwt"}, timeout_s=self.timeout_s,
                                                max_bytes=16 * 1024)
                error = None if answer.ok else f"answered {answer.status}"
            except OutboundError as exc:
                error = exc.reason
            if error is None:
                ATTEMPTS.labels(self.service, "delivered").inc()
                await queue.succeeded([doc["_id"]], {"delivered_at": self.clock.now()})
            elif await queue.failed(Failure(doc, error), self.clock.now()):
                ATTEMPTS.labels(self.service, "given_up").inc()
                log.warning("result callback given up", callback_id=doc["_id"], client_id=doc["client_id"],
                            attempts=doc["attempts"], error=error)
            else:
                ATTEMPTS.labels(self.service, "retried").inc()

        await asyncio.gather(*(attempt(d) for d in claimed))
        return len(claimed)

    async def run_sender(self, *, interval_s: float = 0.5, outbound: Outbound | None = None) -> None:
        """The service's background task: send due callbacks, forever (each replica claims its own)."""
        outbound = outbound or Outbound()
        await repeat_passes(lambda: self.send_due(outbound), interval_s=interval_s, what="result callbacks",
                            traceback=False, wake_name=SENDER)


"""auth's background housekeeping: expire unanswered prompts, and report the signing key's age.

Every few seconds, prompts past their expiry are marked `expired` (once, with
`approval.expired` published, so the requesting service can close its side)
and the current token-signing key's age is exported, so ops can alert when
rotation is overdue.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events.topics import APPROVAL_DECIDED
from libs.service.logging import get_logger

from .approvals.decisions import asked_by_auth
from .context import Auth
from .collections import APPROVALS

APPROVALS_EXPIRED = Counter(
    "harbour_approvals_expired_total",
    "Approval prompts that expired before the citizen answered, by action (login, formfill, sign...).",
    ["action"],
)
SIGNING_KEY_AGE = Gauge(
    "harbour_token_signing_key_age_seconds",
    "Age of the current token-signing key since it started signing (rotation overdue when large).",
    ["service"],
)
INTERVAL_S = 5.0
log = get_logger("harbour.auth.housekeeping")


async def expire_prompts(auth: Auth) -> int:
    now = auth.clock.now()
    expired = 0
    for doc in await auth.db[APPROVALS].find({"status": "pending", "expires_at": {"$lte": now}}).limit(500).to_list():

        async def work(session: AsyncClientSession, doc=doc) -> bool:
            result = await auth.db[APPROVALS].update_one(
                {"_id": doc["_id"], "status": "pending"}, {"$set": {"status": "expired"}}, session=session
            )
            if result.modified_count != 1:
                return False  # decided meanwhile
            request = doc["request"]
            if not asked_by_auth(request):
                await auth.publish(session, APPROVAL_DECIDED, "approval.expired", doc["_id"], {
                    "approval_id": doc["_id"], "account_id": doc["account_id"], "requester": request["requester"],
                    "action": request["action"], "expired_at": doc["expires_at"].isoformat()})
            return True

        if await auth.transaction(work):
            APPROVALS_EXPIRED.labels(doc["request"]["action"]).inc()
            expired += 1
    return expired


async def report_key_age(auth: Auth) -> None:
    current = await auth.keys.current()
    if current.activated_at is not None:
        SIGNING_KEY_AGE.labels("auth").set((auth.clock.now() - current.activated_at).total_seconds())


async def run(auth: Auth) -> None:
    while True:
        try:
            await expire_prompts(auth)
            await report_key_age(auth)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("housekeeping pass failed; retrying")
        await asyncio.sleep(INTERVAL_S)

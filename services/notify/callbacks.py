"""Status callbacks: an agency registers one URL; notify POSTs every status change to it, signed, with retries.

The request body is a compact JWS (`application/jwt`, ES256) signed with
notify's own key — JWKS at `/v1/notifications/jwks` — with claims `iss`
(`<issuer>/v1/notifications`), `aud` (the agency's client id), `iat`, `exp`,
`jti` (unique per callback: deduplicate on it), and the status payload
(`notification_id`, `status`, `sub`, `reference`, `template_id`,
`template_version`, `job_id`, `at`). The agency verifies it as it verifies
any token of the platform. A 2xx answer ends it; anything else is retried
after 1, 2, 4, 8, 16 s (`callback_backoff_s` doubled), then given up
(libs/retry_queue.py).

The URL is an outside party's: it is checked (libs/outbound) when it is
registered — https, a public name that resolves only to public addresses —
and again at every call, against the address actually connected to; a call
refused by that check is recorded with its reason (`last_error`) and retried
like any failure (the name may be fixed), never sent to a refused address.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo.asynchronous.database import AsyncDatabase

from libs.outbound import Outbound, OutboundError, OutboundURLRefused, check_url
from libs.retry_queue import Backoff, Failure, RetryQueue
from libs.service.logging import get_logger

from .context import Notify
from .errors import CallbackURLRefused, NotFound
from .collections import CALLBACK_URLS, CALLBACKS
from .metrics import CALLBACK_ATTEMPTS, CALLBACK_BACKLOG
from .settings import CALLBACK_TOKEN_TTL_S
from .statuses import CallbackState

log = get_logger("harbour.notify.callbacks")


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=500,
                     description="https, a public host (no private, loopback, link-local or mapped addresses); receives application/jwt POSTs")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)  # form, scheme and literal hosts; the name is resolved in register()


class Callback(BaseModel):
    url: str
    updated_at: str


class JWKS(BaseModel):  # the keys that sign status callbacks (no docstring: the schema stays the one formfill's JWKS has)
    keys: list[dict[str, str]]


async def register(db: AsyncDatabase, client_id: str, body: CallbackBody, now: datetime, outbound: Outbound | None = None) -> Callback:
    try:
        await (outbound or Outbound()).check_resolved(body.url)
    except OutboundURLRefused as exc:
        raise CallbackURLRefused(f"the callback URL is refused: {exc}") from None
    await db[CALLBACK_URLS].update_one({"_id": client_id}, {"$set": {"url": body.url, "updated_at": now}}, upsert=True)
    return Callback(url=body.url, updated_at=now.isoformat())


async def show(db: AsyncDatabase, client_id: str) -> Callback:
    doc = await db[CALLBACK_URLS].find_one({"_id": client_id})
    if doc is None:
        raise NotFound("no callback is registered")
    return Callback(url=doc["url"], updated_at=doc["updated_at"].isoformat())


async def signing_keys(notify: Notify) -> JWKS:
    return JWKS.model_validate(await notify.keys.jwks())


async def remove(db: AsyncDatabase, client_id: str) -> None:
    await db[CALLBACK_URLS].delete_one({"_id": client_id})


def callback_queue(notify: Notify) -> RetryQueue:
    """Callbacks waiting for the agency: attempt n that fails waits backoff * 2**(n-1) s; after max_attempts, given up."""
    settings = notify.settings
    return RetryQueue(notify.db[CALLBACKS], Backoff(settings.callback_backoff_s, settings.callback_max_attempts),
                      done=CallbackState.DELIVERED, given_up=CallbackState.GIVEN_UP, lease_s=settings.callback_timeout_s * 2)


async def _sign(notify: Notify, doc: dict[str, Any]) -> str:
    now = int(time.time())  # the real time: the agency checks iat/exp against its own clock
    claims = {"aud": doc["client_id"], "iat": now, "exp": now + CALLBACK_TOKEN_TTL_S, "jti": doc["_id"], **doc["payload"]}
    return await notify.signer.sign(claims, typ="notification-status+jwt")


async def _post(outbound: Outbound, url: str, token: str, timeout_s: float) -> str | None:
    """None when the agency took it (2xx), else why not (its status, or the outbound refusal/failure)."""
    try:
        answer = await outbound.request("POST", url, data=token, headers={"Content-Type": "application/jwt"},
                                        timeout_s=timeout_s, max_bytes=16 * 1024)
    except OutboundError as exc:
        return exc.reason
    return None if answer.ok else f"answered {answer.status}"


async def send_due(notify: Notify, outbound: Outbound, limit: int = 50) -> int:
    """Claim due callbacks (safe with several dispatchers), post them concurrently, record each outcome."""
    queue = callback_queue(notify)
    claimed = await queue.claim_due(notify.clock.now(), limit)

    async def attempt(doc: dict[str, Any]) -> None:
        error = await _post(outbound, doc["url"], await _sign(notify, doc), notify.settings.callback_timeout_s)
        if error is None:
            CALLBACK_ATTEMPTS.labels("delivered").inc()
            await queue.succeeded([doc["_id"]], {"delivered_at": notify.clock.now()})
        elif await queue.failed(Failure(doc, error), notify.clock.now()):
            CALLBACK_ATTEMPTS.labels("given_up").inc()
            log.warning("callback given up", callback_id=doc["_id"], client_id=doc["client_id"], attempts=doc["attempts"], error=error)
        else:
            CALLBACK_ATTEMPTS.labels("retry").inc()

    await asyncio.gather(*(attempt(d) for d in claimed))
    return len(claimed)


async def record_backlog(notify: Notify) -> None:
    CALLBACK_BACKLOG.set(await callback_queue(notify).backlog())

"""Status callbacks: an agency registers one URL; notify POSTs every status change to it, signed, with retries.

The request body is a compact JWS (`application/jwt`, ES256) signed with
notify's own key — JWKS at `/v1/notifications/jwks` — with claims `iss`
(`<issuer>/v1/notifications`), `aud` (the agency's client id), `iat`, `exp`,
`jti` (unique per callback: deduplicate on it), and the status payload
(`notification_id`, `status`, `sub`, `reference`, `template_id`,
`template_version`, `job_id`, `at`). The agency verifies it as it verifies
any token of the platform. A 2xx answer ends it; anything else is retried
after 1, 2, 4, 8, 16 s (`callback_backoff_s` doubled), then given up.

The URL is an outside party's: it is checked (libs/outbound) when it is
registered — https, a public name that resolves only to public addresses —
and again at every call, against the address actually connected to; a call
refused by that check is recorded with its reason (`last_error`) and retried
like any failure (the name may be fixed), never sent to a refused address.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from libs.outbound import Outbound, OutboundError, OutboundURLRefused, check_url
from libs.service.logging import get_logger

from .context import Notify
from .errors import Refused
from .metrics import CALLBACK_ATTEMPTS, CALLBACK_BACKLOG
from .collections import CALLBACK_URLS, CALLBACKS

CALLBACK_TTL_S = 300
log = get_logger("harbour.notify.callbacks")


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=500,
                     description="https, a public host (no private, loopback, link-local or mapped addresses); receives application/jwt POSTs")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)  # form, scheme and literal hosts; the name is resolved in register()


async def register(db: AsyncDatabase, client_id: str, body: CallbackBody, outbound: Outbound | None = None) -> dict[str, Any]:
    try:
        await (outbound or Outbound()).check_resolved(body.url)
    except OutboundURLRefused as exc:
        raise Refused("callback-url-refused", f"the callback URL is refused: {exc}", 422) from None
    now = datetime.now(UTC)
    await db[CALLBACK_URLS].update_one({"_id": client_id}, {"$set": {"url": body.url, "updated_at": now}}, upsert=True)
    return {"url": body.url, "updated_at": now.isoformat()}


async def show(db: AsyncDatabase, client_id: str) -> dict[str, Any] | None:
    doc = await db[CALLBACK_URLS].find_one({"_id": client_id})
    return {"url": doc["url"], "updated_at": doc["updated_at"].isoformat()} if doc else None


async def remove(db: AsyncDatabase, client_id: str) -> None:
    await db[CALLBACK_URLS].delete_one({"_id": client_id})


async def _sign(notify: Notify, doc: dict[str, Any]) -> str:
    now = int(time.time())
    claims = {"aud": doc["client_id"], "iat": now, "exp": now + CALLBACK_TTL_S, "jti": doc["_id"], **doc["payload"]}
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
    """Claim due callbacks one by one (safe with several dispatchers), post them concurrently, record the outcome."""
    now = datetime.now(UTC)
    lease = now + timedelta(seconds=notify.settings.callback_timeout_s * 2)
    claimed = []
    for _ in range(limit):
        doc = await notify.db[CALLBACKS].find_one_and_update(
            {"state": "pending", "next_attempt_at": {"$lte": now}},
            {"$set": {"next_attempt_at": lease}, "$inc": {"attempts": 1}}, return_document=ReturnDocument.AFTER)
        if doc is None:
            break
        claimed.append(doc)
    if not claimed:
        return 0

    async def attempt(doc: dict[str, Any]) -> None:
        error = await _post(outbound, doc["url"], await _sign(notify, doc), notify.settings.callback_timeout_s)
        if error is None:
            CALLBACK_ATTEMPTS.labels("delivered").inc()
            await notify.db[CALLBACKS].update_one({"_id": doc["_id"]}, {"$set": {"state": "delivered", "delivered_at": datetime.now(UTC)}})
        elif doc["attempts"] >= notify.settings.callback_max_attempts:
            CALLBACK_ATTEMPTS.labels("given_up").inc()
            log.warning("callback given up", callback_id=doc["_id"], client_id=doc["client_id"], attempts=doc["attempts"], error=error)
            await notify.db[CALLBACKS].update_one({"_id": doc["_id"]}, {"$set": {"state": "given_up", "last_error": error}})
        else:
            CALLBACK_ATTEMPTS.labels("retry").inc()
            wait = notify.settings.callback_backoff_s * 2 ** (doc["attempts"] - 1)
            await notify.db[CALLBACKS].update_one({"_id": doc["_id"]}, {"$set": {"next_attempt_at": datetime.now(UTC) + timedelta(seconds=wait),
                                                                                "last_error": error}})

    await asyncio.gather(*(attempt(d) for d in claimed))
    return len(claimed)


async def record_backlog(db: AsyncDatabase) -> None:
    CALLBACK_BACKLOG.set(await db[CALLBACKS].count_documents({"state": "pending"}))

"""Status callbacks: an agency registers one URL; notify POSTs every status change to it, signed, with retries.

The request body is a compact JWS (`application/jwt`, ES256) signed with
notify's own key — JWKS at `/v1/notifications/jwks` — with claims `iss`
(`<issuer>/v1/notifications`), `aud` (the agency's client id), `iat`, `exp`,
`jti` (unique per callback: deduplicate on it), and the status payload
(`notification_id`, `status`, `sub`, `reference`, `template_id`,
`template_version`, `job_id`, `at`). The agency verifies it as it verifies
any token of the platform. A 2xx answer ends it; anything else is retried
after 1, 2, 4, 8, 16 s (`callback_backoff_s` doubled), then given up.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from libs.service.logging import get_logger

from .context import Notify
from .metrics import CALLBACK_ATTEMPTS, CALLBACK_BACKLOG
from .store import CALLBACK_URLS, CALLBACKS

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CALLBACK_TTL_S = 300
log = get_logger("harbour.notify.callbacks")


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=500, description="https (http on loopback only); receives application/jwt POSTs")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK:
            raise ValueError("must use https (http only on loopback)")
        if parts.fragment or parts.username or parts.password:
            raise ValueError("no fragment and no credentials in the URL")
        return value


async def register(db: AsyncDatabase, client_id: str, body: CallbackBody) -> dict[str, Any]:
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


async def _post(session: aiohttp.ClientSession, url: str, token: str, timeout_s: float) -> bool:
    try:
        async with session.post(url, data=token, headers={"Content-Type": "application/jwt"},
                                timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False) as response:
            return 200 <= response.status < 300
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


async def send_due(notify: Notify, session: aiohttp.ClientSession, limit: int = 50) -> int:
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
        ok = await _post(session, doc["url"], await _sign(notify, doc), notify.settings.callback_timeout_s)
        if ok:
            CALLBACK_ATTEMPTS.labels("delivered").inc()
            await notify.db[CALLBACKS].update_one({"_id": doc["_id"]}, {"$set": {"state": "delivered", "delivered_at": datetime.now(UTC)}})
        elif doc["attempts"] >= notify.settings.callback_max_attempts:
            CALLBACK_ATTEMPTS.labels("given_up").inc()
            log.warning("callback given up", callback_id=doc["_id"], client_id=doc["client_id"], attempts=doc["attempts"])
            await notify.db[CALLBACKS].update_one({"_id": doc["_id"]}, {"$set": {"state": "given_up"}})
        else:
            CALLBACK_ATTEMPTS.labels("retry").inc()
            wait = notify.settings.callback_backoff_s * 2 ** (doc["attempts"] - 1)
            await notify.db[CALLBACKS].update_one({"_id": doc["_id"]}, {"$set": {"next_attempt_at": datetime.now(UTC) + timedelta(seconds=wait)}})

    await asyncio.gather(*(attempt(d) for d in claimed))
    return len(claimed)


async def record_backlog(db: AsyncDatabase) -> None:
    CALLBACK_BACKLOG.set(await db[CALLBACKS].count_documents({"state": "pending"}))

"""RFC 9126 Pushed Authorization Requests: the client posts the request first, the browser carries a reference."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from ..collections import PUSHED_REQUESTS
from .errors import UnredirectableError

URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
LIFETIME_S = 90


async def push(db: AsyncDatabase, client_id: str, params: dict[str, str]) -> tuple[str, int]:
    reference = secrets.token_urlsafe(24)
    await db[PUSHED_REQUESTS].insert_one(
        {"_id": reference, "client_id": client_id, "params": params, "expires_at": datetime.now(UTC) + timedelta(seconds=LIFETIME_S)}
    )
    return URN_PREFIX + reference, LIFETIME_S


async def redeem(db: AsyncDatabase, request_uri: str, client_id: str | None) -> dict[str, str]:
    """The pushed parameters, once; only for the client that pushed them (RFC 9126 §4)."""
    if not request_uri.startswith(URN_PREFIX):
        raise UnredirectableError("invalid_request_uri", "request_uri must come from the pushed authorization request endpoint")
    doc = await db[PUSHED_REQUESTS].find_one_and_delete(
        {"_id": request_uri[len(URN_PREFIX):], "expires_at": {"$gt": datetime.now(UTC)}}
    )
    if doc is None or doc["client_id"] != client_id:
        raise UnredirectableError("invalid_request_uri", "the request_uri is unknown, used or expired")
    return {**doc["params"], "client_id": doc["client_id"]}

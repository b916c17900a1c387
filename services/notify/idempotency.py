"""`Idempotency-Key`: a retried send answers what the first one created instead of sending again.

The key is the agency's own (1 to 200 printable characters), remembered for
24 hours with a hash of the request it came with; the same key with another
request is refused (422 idempotency-key-reused).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from .callers import Agency
from .collections import IDEMPOTENCY
from .context import Notify
from .errors import BadIdempotencyKey, IdempotencyKeyReused

Answer = TypeVar("Answer", bound=BaseModel)


def fingerprint(body: BaseModel) -> str:
    """The request as sent (so "latest version" stays the same request across a new template version)."""
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise BadIdempotencyKey("Idempotency-Key is 1 to 200 printable characters")
    return key


async def _remembered(notify: Notify, session: AsyncClientSession, key_id: str, request_hash: str) -> dict[str, Any] | None:
    seen = await notify.db[IDEMPOTENCY].find_one({"_id": key_id}, session=session)
    if seen is None:
        return None
    if seen["fingerprint"] != request_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
    return seen


async def once(notify: Notify, agency: Agency, key: str | None, request_hash: str, answer_type: type[Answer],
               work: Callable[[AsyncClientSession], Awaitable[Answer]]) -> tuple[Answer, bool]:
    """Run `work(session)` once per (agency, key); (answer, created). A retry gets the first answer, created=False."""
    key_id = f"{agency.client_id}:{key}" if key else None

    async def transaction(session: AsyncClientSession) -> tuple[Answer, bool]:
        if key_id is not None:
            seen = await _remembered(notify, session, key_id, request_hash)
            if seen is not None:
                return answer_type.model_validate(seen["answer"]), False
        answer = await work(session)
        if key_id is not None:
            await notify.db[IDEMPOTENCY].insert_one({"_id": key_id, "fingerprint": request_hash, "answer": answer.model_dump(mode="json"),
                                                     "created_at": notify.clock.now()}, session=session)
        return answer, True

    try:
        return await notify.transaction(transaction)
    except DuplicateKeyError:
        # The same key raced in another request and won: answer as a retry would.
        return await notify.transaction(transaction)

"""`Idempotency-Key`: a retried send answers what the first one created instead of sending again.

The key is the agency's own (1 to 200 printable characters), remembered per
agency for 24 hours with a hash of the request it came with and the answer
it got. Every send that takes the key goes through `once`, which is the
whole defence:

- A key seen before is answered at once with the first answer — before the
  request is checked again, so a retry is not refused for something that
  changed since it was accepted (a new template version, say).
- Otherwise the request is checked (`prepare`), then the key, what the
  request creates and its answer are written in **one transaction**. A
  process killed before the commit leaves none of them (the retry creates
  it); killed after the commit, before its answer left, it leaves all (the
  retry answers the same). Never two, never a job without its key or a key
  without its job and answer.
- Two requests with the same key at once: the key is the transaction's first
  write, so only one can hold it; the other's transaction conflicts there,
  before writing anything else, and is run again (PyMongo's
  `with_transaction` backs off and retries it, or once more here on a
  duplicate key) until the first commits; it then sees the key and answers
  the first answer. If the first attempt's process died with its
  transaction open, the database keeps the key held until it drops that
  transaction (transactionLifetimeLimitSeconds: 60 s locally and in mongod);
  a retry meanwhile waits out its request's database deadline and is
  answered 503 with Retry-After (libs/store/client.py), and the one after
  creates it.
- The same key with another request is refused (422 idempotency-key-reused).
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
from .errors import BadIdempotencyKey, IdempotencyKeyReused, IdempotentRequestInProgress

Answer = TypeVar("Answer", bound=BaseModel)
# What a checked request writes, in the transaction it is given; it returns the answer.
Work = Callable[[AsyncClientSession], Awaitable[Answer]]
HEADER = "Idempotency-Key"
# On an answer that replays what an earlier request with the same key created (the status and body are the first's).
REPLAYED_HEADER = "Idempotent-Replayed"


def fingerprint(body: BaseModel) -> str:
    """The request as sent (so "latest version" stays the same request across a new template version)."""
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise BadIdempotencyKey("Idempotency-Key is 1 to 200 printable characters")
    return key


async def _remembered(notify: Notify, session: AsyncClientSession | None, key_id: str, request_hash: str) -> dict[str, Any] | None:
    seen = await notify.db[IDEMPOTENCY].find_one({"_id": key_id}, session=session)
    if seen is None:
        return None
    if seen["fingerprint"] != request_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
    if "answer" not in seen:
        # Never seen with MongoDB, where the key and its answer commit together; the local MongoDB-protocol server
        # shows a transaction's writes before it commits (and keeps them if its client dies): not a 500, a retry.
        raise IdempotentRequestInProgress("a request with this Idempotency-Key is still being handled; retry it")
    return seen


async def once(notify: Notify, agency: Agency, key: str | None, body: BaseModel, answer_type: type[Answer],
               prepare: Callable[[], Awaitable[Work[Answer]]]) -> tuple[Answer, bool]:
    """The request `body` under the agency's `key` (the raw header, or None): (answer, created).

    `prepare()` checks the request (raising its refusals) and returns the work that stores it; it runs only when
    the key is new. created=False: the answer is the first request's, replayed.
    """
    key = checked_key(key)
    key_id = f"{agency.client_id}:{key}" if key else None
    request_hash = fingerprint(body)
    if key_id is not None:
        seen = await _remembered(notify, None, key_id, request_hash)
        if seen is not None:
            return answer_type.model_validate(seen["answer"]), False
    work = await prepare()

    async def transaction(session: AsyncClientSession) -> tuple[Answer, bool]:
        if key_id is None:
            return await work(session), True
        seen = await _remembered(notify, session, key_id, request_hash)
        if seen is not None:
            return answer_type.model_validate(seen["answer"]), False
        # The key first: a request racing this one conflicts here, before it writes anything else.
        await notify.db[IDEMPOTENCY].insert_one({"_id": key_id, "fingerprint": request_hash, "created_at": notify.clock.now()},
                                                session=session)
        answer = await work(session)
        await notify.db[IDEMPOTENCY].update_one({"_id": key_id}, {"$set": {"answer": answer.model_dump(mode="json")}}, session=session)
        return answer, True

    try:
        return await notify.transaction(transaction)
    except DuplicateKeyError:
        # The same key raced in another request and won: answer as a retry would.
        return await notify.transaction(transaction)

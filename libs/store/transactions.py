"""Multi-document transactions: state change and outbox event commit together or not at all.

What must wait for the commit (waking a sender, handing a new prompt to the phones' streams, remembering a decided
login) is registered inside the transaction with `after_commit` and runs once it has committed — whoever runs the
transaction: a request's use case, an event consumer, an operator's command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from typing import TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

T = TypeVar("T")

# Inside `in_transaction`: what to do once it has committed, by key (the attempt that committed only).
_AFTER_COMMIT: ContextVar[dict[Hashable, Callable[[], None]] | None] = ContextVar("after_commit", default=None)


async def in_transaction(
    client: AsyncMongoClient, work: Callable[[AsyncClientSession], Awaitable[T]]
) -> T:
    """Run `work(session)` in one transaction, then what it registered with `after_commit`.

    PyMongo's `with_transaction` retries the whole callback on a
    TransientTransactionError and the commit on UnknownTransactionCommitResult,
    so `work` must be safe to run again from the start; each attempt starts
    with nothing registered, so only the committed attempt's callbacks run.
    """
    callbacks: dict[Hashable, Callable[[], None]] = {}

    async def attempt(session: AsyncClientSession) -> T:
        callbacks.clear()
        return await work(session)

    token = _AFTER_COMMIT.set(callbacks)
    try:
        async with client.start_session() as session:
            result = await session.with_transaction(
                attempt,
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern("majority"),
            )
    finally:
        _AFTER_COMMIT.reset(token)
    for callback in callbacks.values():
        callback()
    return result


def after_commit(key: Hashable, callback: Callable[[], None]) -> bool:
    """Inside `in_transaction`: call `callback` once it has committed (one per `key`: a later registration of the
    same key replaces the earlier). Outside one: nothing is registered, and False says so (the caller acts now)."""
    callbacks = _AFTER_COMMIT.get()
    if callbacks is None:
        return False
    callbacks[key] = callback
    return True


def at_commit(key: Hashable, callback: Callable[[], None]) -> None:
    """`callback` once the current transaction has committed (`after_commit`), or now when there is none."""
    if not after_commit(key, callback):
        callback()

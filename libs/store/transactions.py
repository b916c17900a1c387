"""Multi-document transactions: state change and outbox event commit together or not at all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

T = TypeVar("T")


async def in_transaction(
    client: AsyncMongoClient, work: Callable[[AsyncClientSession], Awaitable[T]]
) -> T:
    """Run `work(session)` in one transaction.

    PyMongo's `with_transaction` retries the whole callback on a
    TransientTransactionError and the commit on UnknownTransactionCommitResult,
    so `work` must be safe to run again from the start.
    """
    async with client.start_session() as session:
        return await session.with_transaction(
            work,
            read_concern=ReadConcern("snapshot"),
            write_concern=WriteConcern("majority"),
        )

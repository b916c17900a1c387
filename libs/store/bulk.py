"""One update for many documents named by `_id`, sent as one bulk command of per-`_id` updates.

The local MongoDB-protocol server serves an update by `_id` straight from the index, but an `update_many` whose
filter is an `$in` of ids goes through its multi-document path: a candidate scan, then a chunked rewrite — 0.85 ms
against 0.46 ms for one id, 3.0 against 2.1 ms for ten (measured on this machine), and it conflicted with the
transactions writing the same collection (the outbox: docs/architecture.md, Query shapes). MongoDB serves both forms
from the `_id` index, in one round trip either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from .chunks import BULK_CHUNK, chunks


async def update_each(collection: AsyncCollection, ids: Iterable[Any], update: Mapping[str, Any], *,
                      session: AsyncClientSession | None = None) -> int:
    """Apply `update` to each document whose `_id` is in `ids` (unordered; missing ids are skipped); the count matched.

    A command per 100 ids (chunks.BULK_CHUNK), so that no single command holds the local server for long."""
    matched = 0
    for chunk in chunks(list(ids), BULK_CHUNK):
        operations = [UpdateOne({"_id": id_}, update) for id_ in chunk]
        matched += (await collection.bulk_write(operations, ordered=False, session=session)).matched_count
    return matched

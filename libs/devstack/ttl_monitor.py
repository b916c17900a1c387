"""The local database's TTL monitor: expired documents removed as MongoDB removes them, through the index.

MongoDB's TTL monitor wakes every 60 s (ttlMonitorSleepSecs) and, for each TTL index, deletes the documents
whose indexed date is older than `expireAfterSeconds` by scanning that index's range. SecantusDB's own sweep
instead reads and decodes every document of every collection that has a TTL index, holding the database's
global lock meanwhile: 5.1 s every minute with 10,000 stored logins (78,000 documents in TTL collections),
during which every command waits. So the dev database runs with its sweep off and this monitor in its process
does MongoDB's work over the wire: one ranged `delete_many` per TTL index, which the database serves from the
index (a few milliseconds when nothing has expired, whatever the collection holds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import MongoClient

log = logging.getLogger("harbour.devstack.ttl")

SYSTEM_DATABASES = ("admin", "config", "local")


def expiry_filter(index: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The filter of the documents a TTL index has expired at `now`, or None if the index is not a TTL index.

    As mongod: a single-field index other than `_id` with a numeric, non-negative `expireAfterSeconds`; a document
    expires when the field holds a date (or an array with a date) before the cutoff — `$lt` on a date compares
    dates only —, and a partial index expires only what its filter covers.
    """
    ttl = index.get("expireAfterSeconds")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl != ttl or ttl < 0:
        return None
    keys = list(index.get("key", {}).items())
    if len(keys) != 1 or keys[0][0] == "_id" or isinstance(keys[0][1], str):
        return None
    expired = {keys[0][0]: {"$lt": now - timedelta(seconds=float(ttl))}}
    partial = index.get("partialFilterExpression")
    return {"$and": [expired, dict(partial)]} if isinstance(partial, Mapping) and partial else expired


def sweep_once(client: MongoClient, now: datetime | None = None) -> int:
    """Delete what every TTL index of every user database has expired; the number of documents deleted."""
    now = now or datetime.now(UTC)
    deleted = 0
    for database in client.list_database_names():
        if database in SYSTEM_DATABASES:
            continue
        for collection in client[database].list_collection_names():
            if collection.startswith("system."):
                continue
            for index in client[database][collection].list_indexes():
                query = expiry_filter(index, now)
                if query is not None:
                    deleted += client[database][collection].delete_many(query).deleted_count
    return deleted


class TtlMonitor:
    """Runs `sweep_once` every `interval_s` on a thread of its own until stopped."""

    def __init__(self, uri: str, interval_s: float) -> None:
        self.uri = uri
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ttl-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with MongoClient(self.uri, directConnection=True, serverSelectionTimeoutMS=5000) as client:
            while not self._stop.wait(self.interval_s):
                try:
                    deleted = sweep_once(client)
                    if deleted:
                        log.info("ttl monitor deleted %d expired documents", deleted)
                except Exception:  # noqa: BLE001 - a failed pass must not end expiry for good; the next one retries
                    log.exception("ttl monitor pass failed")

"""An agency's consumer of its own topic, `agency.<client_id>.events` (docs/events.md).

  python -m clients.agency_consumer --bootstrap 127.0.0.1:9092 --client-id <client_id> [--from-beginning]
         [--group <client_id>-example] [--seen-db seen.sqlite3] [--remember 100000] [--max N] [--idle-timeout S]

Prints each event once as one JSON line: logins to the agency's service,
consents it received, signatures it requested and its notifications'
statuses, all with the agency's own pairwise `sub` — for a client registered
with `agency_events: true` (the platform writes no topic for the others). As a library,
`consume(...)` hands each CloudEvent to a callback. In production the agency
connects with its TLS Kafka user, whose ACLs allow reading only this topic
and consumer groups prefixed with its client id.

Records are CloudEvents in the Kafka binding's structured mode (header
`content-type: application/cloudevents+json`, the event as JSON in the value).
Delivery is at-least-once: the platform does not repeat what the broker
acknowledged, but a broker that loses acknowledged writes in a crash gets
them published again, and a consumer that stops before committing reads its
last batch again. So the example remembers the ids it has handled
(`SeenIds`: the last `--remember` ids in memory, and in a SQLite file with
`--seen-db`, so a restart remembers too) and skips an event whose id it has
seen. An agency that applies events to its own database does better by
storing the id in the same transaction as the effect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from libs.events import CloudEvent, InvalidEnvelope, agency_topic
from libs.service.settings import DEFAULT_KAFKA_BOOTSTRAP

STRUCTURED = b"application/cloudevents+json"
# Copies come within minutes of the first (a republished or re-read record); the last 100,000 ids cover
# far more than that for any agency's volume, in a few MB.
DEFAULT_REMEMBER = 100_000


class SeenIds:
    """The ids of the events already handled: the last `capacity` in memory, and in a SQLite file if `path` is given.

    Bounded both ways: the memory keeps the most recently seen ids (LRU); the file keeps the last `capacity`
    handled, pruning older rows as it grows.
    """

    def __init__(self, capacity: int = DEFAULT_REMEMBER, path: str | Path | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(path)
            self._db.execute("CREATE TABLE IF NOT EXISTS seen (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL)")
            self._db.commit()

    def __contains__(self, event_id: str) -> bool:
        if event_id in self._recent:
            self._recent.move_to_end(event_id)
            return True
        if self._db is not None and self._db.execute("SELECT 1 FROM seen WHERE id = ?", (event_id,)).fetchone():
            self._remember(event_id)
            return True
        return False

    def add(self, event_id: str) -> None:
        """Record `event_id` as handled (durably, with a file, before returning)."""
        self._remember(event_id)
        if self._db is not None:
            with self._db:
                self._db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (event_id,))
                self._db.execute("DELETE FROM seen WHERE n <= (SELECT MAX(n) FROM seen) - ?", (self.capacity,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        self._recent.move_to_end(event_id)
        while len(self._recent) > self.capacity:
            self._recent.popitem(last=False)


def event_of(headers, value: bytes) -> CloudEvent:
    """The CloudEvent of a structured-mode record; anything else is an InvalidEnvelope."""
    content_type = next((v for k, v in headers or () if k.lower() == "content-type"), None)
    if content_type is None or content_type.split(b";")[0].strip().lower() != STRUCTURED:
        raise InvalidEnvelope(f"not a structured-mode CloudEvent (content-type {content_type!r})")
    return CloudEvent.from_json(value)


async def consume(bootstrap: str, client_id: str, handle: Callable[[CloudEvent], Awaitable[None]], *,
                  from_beginning: bool = False, max_records: int | None = None, idle_timeout_s: float | None = None,
                  seen: SeenIds | None = None, group: str | None = None) -> int:
    """Hand each event of the agency's topic to `handle` once, committing after each batch; return how many were handled.

    An event whose id is in `seen` (a fresh in-memory SeenIds by default) is skipped; a record that is not a
    structured-mode CloudEvent is reported on stderr and skipped. Stops after `max_records` records read
    (duplicates included) or `idle_timeout_s` without any.
    """
    seen = seen if seen is not None else SeenIds()
    consumer = AIOKafkaConsumer(
        agency_topic(client_id), bootstrap_servers=bootstrap, group_id=group or f"{client_id}-example",
        enable_auto_commit=False, auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    handled = read = 0
    try:
        while max_records is None or read < max_records:
            batch = await consumer.getmany(timeout_ms=int((idle_timeout_s or 1.0) * 1000))
            if not batch and idle_timeout_s is not None:
                break
            for messages in batch.values():
                for message in messages:
                    read += 1
                    try:
                        event = event_of(message.headers, message.value)
                    except InvalidEnvelope as exc:
                        print(f"skipped offset {message.offset}: {exc}", file=sys.stderr, flush=True)
                        continue
                    if event.id in seen:
                        continue  # a copy of an event already handled
                    await handle(event)
                    seen.add(event.id)
                    handled += 1
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
    return handled


async def _print(event: CloudEvent) -> None:
    print(json.dumps({"id": event.id, "type": event.type, "time": event.time.isoformat(), "data": event.data},
                     ensure_ascii=False), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.agency_consumer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=DEFAULT_KAFKA_BOOTSTRAP)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--from-beginning", action="store_true", help="a group without committed offsets starts at the oldest record")
    parser.add_argument("--group", default=None, help="consumer group (default <client_id>-example; its ACL allows <client_id>-*)")
    parser.add_argument("--seen-db", default=None, help="SQLite file remembering the ids handled across restarts")
    parser.add_argument("--remember", type=int, default=DEFAULT_REMEMBER, help="how many handled ids to remember")
    parser.add_argument("--max", type=int, default=None, help="stop after reading this many records (copies included)")
    parser.add_argument("--idle-timeout", type=float, default=None, help="stop after this many seconds without events")
    args = parser.parse_args(argv)
    seen = SeenIds(args.remember, args.seen_db)
    try:
        asyncio.run(consume(args.bootstrap, args.client_id, _print, from_beginning=args.from_beginning,
                            max_records=args.max, idle_timeout_s=args.idle_timeout, seen=seen, group=args.group))
    finally:
        seen.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

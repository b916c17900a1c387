"""An agency's consumer of its own topic, `agency.<client_id>.events` (docs/events.md).

  python -m clients.agency_consumer --bootstrap 127.0.0.1:9092 --client-id <client_id> [--from-beginning] [--max N]

Prints each event as one JSON line: logins to the agency's service, consents
it received, signatures it requested and its notifications' statuses, all
with the agency's own pairwise `sub`. As a library, `consume(...)` hands each
CloudEvent to a callback. In production the agency connects with its TLS
Kafka user, whose ACLs allow reading only this topic and consumer groups
prefixed with its client id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from libs.events import CloudEvent, agency_topic
from libs.service.settings import DEFAULT_KAFKA_BOOTSTRAP


async def consume(bootstrap: str, client_id: str, handle: Callable[[CloudEvent], Awaitable[None]], *,
                  from_beginning: bool = False, max_events: int | None = None, idle_timeout_s: float | None = None) -> int:
    """Hand each event of the agency's topic to `handle`, committing after each; return how many were handled."""
    consumer = AIOKafkaConsumer(
        agency_topic(client_id), bootstrap_servers=bootstrap, group_id=f"{client_id}-example",
        enable_auto_commit=False, auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    handled = 0
    try:
        while max_events is None or handled < max_events:
            batch = await consumer.getmany(timeout_ms=int((idle_timeout_s or 1.0) * 1000))
            if not batch and idle_timeout_s is not None:
                break
            for messages in batch.values():
                for message in messages:
                    await handle(CloudEvent.from_json(message.value))
                    handled += 1
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
    return handled


async def _print(event: CloudEvent) -> None:
    print(json.dumps({"type": event.type, "time": event.time.isoformat(), "data": event.data}, ensure_ascii=False), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.agency_consumer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=DEFAULT_KAFKA_BOOTSTRAP)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--max", type=int, default=None, help="stop after this many events")
    parser.add_argument("--idle-timeout", type=float, default=None, help="stop after this many seconds without events")
    args = parser.parse_args(argv)
    asyncio.run(consume(args.bootstrap, args.client_id, _print, from_beginning=args.from_beginning,
                        max_events=args.max, idle_timeout_s=args.idle_timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())

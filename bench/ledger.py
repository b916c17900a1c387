"""The audit ledger's throughput: records appended per second, by the appender alone and from the broker on.

    .venv/bin/python bench/ledger.py [--records 5000] [--batch 500] [--events 2000]

On a private broker and database (tests/support/infrastructure.py: the running `make up` stack's when there is
one, else its own on free ports under .dev/, stopped by PID), in a database of its own (dropped at the end):

1. appender alone: `--records` audit records put in the inbox directly, then appended in batches of `--batch`
   (hash chain, one transaction per batch) — records/s;
2. end to end: `--events` audit events published to a topic of its own, consumed by the ledger's consumer (one
   transaction per fetched batch of a partition, up to `--batch`) while the appender runs — events/s from the
   first event consumed to the last record appended (`--consumer-first`: the consumer alone first, then the appender).

`--preload N` first writes a log of N records directly (appending must not slow down as the log grows).
Then verifies the log it wrote (chain.verify_log) and says how long that took. Loopback only; bounded; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaProducer  # noqa: E402

from libs.events import Publisher  # noqa: E402
from libs.events.audit import audit_event  # noqa: E402
from libs.events.consumer import PROCESSED_INDEXES  # noqa: E402
from libs.events.partition_leases import LEASE_INDEXES  # noqa: E402
from libs.store import apply_indexes, create_client  # noqa: E402
from services.signing.ledger.chain import GENESIS, append, record_of, verify_log  # noqa: E402
from services.signing.ledger.consumer import AuditConsumer  # noqa: E402
from services.signing.ledger.store import HEAD_ID, INBOX, INDEXES, LOG, STATE, Ledger, consumer_handler, read_log  # noqa: E402
from tests.support.broker import new_topic  # noqa: E402
from tests.support.infrastructure import shared_or_private_infra  # noqa: E402


def events(n: int, tag: str):
    return [audit_event(service="auth", subject=f"acct-{i % 97}", action="login", actor=f"device-{i % 13}",
                        client_id=f"client-{i % 5}", flow="browser", acr="plus", amr=["hwk", "pin"], run=tag, n=i)
            for i in range(n)]


async def preload(db, count: int) -> None:
    """A log of `count` records already there (a chain of their own, written directly), its head in audit_state."""
    if not count:
        return
    now = datetime.now(UTC)
    entries = append(0, GENESIS, [record_of(e.model_dump(mode="json")) for e in events(count, "preload")])
    for start in range(0, count, 2000):
        await db[LOG].insert_many([{"_id": e.seq, "event_id": e.record["id"], "record": e.record, "leaf": e.leaf,
                                    "chain": e.chain, "appended_at": now} for e in entries[start:start + 2000]])
    await db[STATE].replace_one({"_id": HEAD_ID}, {"seq": entries[-1].seq, "chain": entries[-1].chain}, upsert=True)
    print(f"preloaded: a log of {count} records")


async def appender_alone(db, records: int, batch: int) -> None:
    now = datetime.now(UTC)
    docs = [{"_id": e.id, "record": record_of(e.model_dump(mode="json")), "received_at": now, "n": n}
            for n, e in enumerate(events(records, "alone"))]
    for start in range(0, len(docs), 1000):
        await db[INBOX].insert_many(docs[start:start + 1000])
    ledger = Ledger(db.client, db, batch=batch)
    started = time.perf_counter()
    while await ledger.append_once():
        pass
    elapsed = time.perf_counter() - started
    print(f"appender alone: {records} records in {elapsed:.2f} s = {records / elapsed:.0f} records/s (batch {batch})")


async def end_to_end(infra, db, count: int, batch: int, consumer_first: bool = False) -> None:
    topic = await new_topic(infra.kafka_bootstrap, prefix="bench-audit")
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    for event in events(count, "e2e"):
        await producer.send(topic.name, event.to_json(), key=event.subject.encode())
    await producer.flush()
    await producer.stop()
    before = await db[LOG].count_documents({})
    dlq = Publisher(infra.kafka_bootstrap, "bench-ledger-dlq")
    await dlq.start()
    consumer = AuditConsumer(max_records=batch, service="bench-ledger", group=f"bench-ledger-{uuid.uuid4().hex[:6]}", topics=[topic.name],
                             handler=consumer_handler(db), mongo_client=db.client, db=db, dlq_producer=dlq,
                             bootstrap=infra.kafka_bootstrap)
    ledger = Ledger(db.client, db, batch=batch, poll_interval_s=0.05)
    await consumer.start()
    started = time.perf_counter()
    tasks = [asyncio.create_task(consumer.run())]
    if not consumer_first:
        tasks.append(asyncio.create_task(ledger.run()))
    try:
        if consumer_first:
            while await db[INBOX].count_documents({}) < count:
                await asyncio.sleep(0.05)
            consumed = time.perf_counter() - started
            print(f"consumer alone: {count} events into the inbox in {consumed:.2f} s = {count / consumed:.0f} events/s")
            tasks.append(asyncio.create_task(ledger.run()))
        while await db[LOG].count_documents({}) < before + count:
            await asyncio.sleep(0.05)
            if time.perf_counter() - started > 300:
                raise SystemExit("gave up after 300 s")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await consumer.stop()
        await dlq.stop()
    elapsed = time.perf_counter() - started
    print(f"end to end: {count} events consumed and appended in {elapsed:.2f} s = {count / elapsed:.0f} events/s")


async def main(infra, args) -> None:
    client = create_client(infra.mongo_uri)
    db = client[f"bench_ledger_{uuid.uuid4().hex[:8]}"]
    try:
        await apply_indexes(db, (*INDEXES, *PROCESSED_INDEXES, *LEASE_INDEXES))
        await preload(db, args.preload)
        await appender_alone(db, args.records, args.batch)
        await end_to_end(infra, db, args.events, args.batch, args.consumer_first)
        started = time.perf_counter()
        entries = await read_log(db)
        report = verify_log(entries, [], {})
        print(f"verify: {report.size} records read and checked in {time.perf_counter() - started:.2f} s, ok={report.ok}")
    finally:
        try:
            await client.drop_database(db.name)
        except Exception as exc:  # noqa: BLE001 - a busy server timing out; say so, the figures stand
            print(f"could not drop {db.name}: {type(exc).__name__}; drop it by hand")
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--preload", type=int, default=0, help="records already in the log before measuring")
    parser.add_argument("--consumer-first", action="store_true",
                        help="let the consumer fill the inbox before the appender starts (each measured alone)")
    arguments = parser.parse_args()
    with shared_or_private_infra() as infra:  # started outside the event loop (it creates the topics itself)
        asyncio.run(main(infra, arguments))

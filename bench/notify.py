"""Notifications end to end: a 10,000-recipient batch, next to the raw rates of the database and the broker.

    .venv/bin/python bench/notify.py [--recipients 10000] [--kill-dispatcher]

Starts its own private stack on free ports (services, dispatcher, broker,
database), registers an agency, seeds the recipients into notify's
projections (as tests/e2e/test_notify.py does), POSTs one batch through the
gateway and times it until every notification is delivered to an inbox.
With --kill-dispatcher it SIGKILLs the dispatcher as soon as the first inbox
item is written, starts it again, and checks that every recipient still got
exactly one inbox item (the suite's crash test does the same with 1,000). In
the same run it measures the database's raw insert rate (documents of the
same size, 1,000 per insert_many) and the broker's raw produce (acks=all,
idempotent) and consume rates, and prints the three side by side with the
ratio of the end-to-end rate to the raw insert rate (issue 17's goal: at
least 0.3). To tell the design from the datastore it then times the same
database taking nothing but each notification's own two documents — the
batch's notifications and inbox items, copied with new ids into a scratch
database with notify's indexes, one transaction per chunk of 500 — and prints
that rate, its ratio to the raw insert (the most any design writing those two
documents could reach on this database) and the end-to-end rate's share of
it. It also counts the database's writes over the batch: documents written in
notify's database (its change stream: one change per document
inserted, updated or deleted) and write commands (serverStatus opcounters insert +
update + delete; the local database counts a command once however many
documents it writes, as mongod's `top` does), each divided by the recipients.
Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer  # noqa: E402

from libs.devstack import DevStack, StackConfig, processes  # noqa: E402
from libs.devstack.config import REPO_ROOT  # noqa: E402
from libs.events import create_producer, ensure_topics  # noqa: E402
from libs.events.topics import Topic  # noqa: E402
from libs.store import create_client  # noqa: E402


async def kill_and_restart_dispatcher(stack: DevStack, db, client_id: str) -> None:
    """SIGKILL the dispatcher once delivery has begun (no clean shutdown), then start it again."""
    spec = stack.worker_spec("notify-dispatcher")
    pid = processes.running_pid(spec.pid_file, spec.marker)
    assert pid is not None, "the dispatcher is not running"
    while not await db["inbox"].count_documents({"client_id": client_id}):
        await asyncio.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    while processes.is_alive(pid):
        await asyncio.sleep(0.05)
    await asyncio.to_thread(stack.up_worker, "notify-dispatcher")
    print("dispatcher killed mid-batch and started again", flush=True)


WRITE_COUNTERS = ("insert", "update", "delete")


async def write_commands(mongo) -> int:
    counters = (await mongo.admin.command("serverStatus"))["opcounters"]
    return sum(counters[name] for name in WRITE_COUNTERS)


# Renewed on a timer however many notifications there are; and the local push adapter's record of what a phone
# would receive (the provider's side: APNs or FCM in production).
NOT_PER_NOTIFICATION = {"outbox_lease", "consumer_leases", "consumer_members", "push_log"}


class DocumentWrites:
    """Documents written in one database, per collection, from its change stream: one change per document inserted,
    updated or deleted. Opened once the batch is done, from the operation time it began at (`start_at`), so the
    stream's work is not part of the timed batch (followed live, it took ~11 % of the database's time during it,
    py-spy 2026-12-03). The local database keeps its last 100,000 oplog entries: a 10,000 batch writes ~30,000."""

    def __init__(self, db, start_at) -> None:
        self.db = db
        self.start_at = start_at
        self.counts: dict[str, int] = {}
        self.seen_up_to = None

    async def __aenter__(self) -> "DocumentWrites":
        self.stream = await self.db.watch(max_await_time_ms=250, start_at_operation_time=self.start_at)
        self.task = asyncio.create_task(self._follow())
        return self

    async def _follow(self) -> None:
        while True:
            change = await self.stream.try_next()
            if change is not None:
                collection = change.get("ns", {}).get("coll", "?")
                self.counts[collection] = self.counts.get(collection, 0) + 1
                self.seen_up_to = change.get("clusterTime", self.seen_up_to)
                self.last_change = time.monotonic()

    async def settle(self, mongo, quiet_s: float = 3.0) -> dict[str, int]:
        """The counts, once the stream has caught up with every write made so far (or seen none for `quiet_s`)."""
        now = (await mongo.admin.command("serverStatus")).get("operationTime")
        self.last_change = getattr(self, "last_change", time.monotonic())
        while not (now is not None and self.seen_up_to is not None and self.seen_up_to >= now):
            if time.monotonic() - self.last_change > quiet_s:
                break
            await asyncio.sleep(0.25)
        return dict(self.counts)

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.close()


async def end_to_end(stack: DevStack, n: int, kill_dispatcher: bool = False) -> tuple[float, dict[str, int], int]:
    """(notifications/s, documents written in notify's database per collection, write commands), over the batch."""
    gateway = stack.config.service_url("gateway")
    mongo = create_client(stack.config.mongo_uri)
    db = mongo[f"{stack.config.db_prefix}notify"]
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway + "/v1/clients", json={"client_name": "Bench Agency", "kind": "agency", "scope": "notify"}) as r:
            agency = await r.json()
        basic = aiohttp.encode_basic_auth(agency["client_id"], agency["client_secret"])
        async with http.post(gateway + "/oidc/token", data={"grant_type": "client_credentials", "scope": "notify"},
                             headers={"Authorization": basic}) as r:
            headers = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
        async with http.post(gateway + "/v1/templates", headers=headers, json={
                "name": "Bench", "placeholders": ["n"], "content": {"en": {"subject": "Bench {{ n }}", "body": "Message {{ n }}."}}}) as r:
            template = await r.json()
        while (client := await db["clients"].find_one({"_id": agency["client_id"]})) is None:
            await asyncio.sleep(0.1)
        run = uuid.uuid4().hex[:8]
        await db["subjects"].insert_many([{"_id": f"b-{run}-{i}", "sector": client["sector"], "account_id": f"a-{run}-{i}"} for i in range(n)])
        await db["accounts"].insert_many([{"_id": f"a-{run}-{i}", "language": "en", "state": "active"} for i in range(n)])
        body = {"template_id": template["template_id"], "recipients": [{"sub": f"b-{run}-{i}", "personalisation": {"n": str(i)}} for i in range(n)]}
        commands_before = await write_commands(mongo)
        began_at = (await mongo.admin.command("serverStatus"))["operationTime"]
        started = time.perf_counter()
        async with http.post(gateway + "/v1/notifications/batch", headers=headers, json=body) as r:
            job = await r.json()
            assert r.status == 201, job
        if kill_dispatcher:
            await kill_and_restart_dispatcher(stack, db, agency["client_id"])
        while True:
            try:
                async with http.get(gateway + f"/v1/notifications/batch/{job['job_id']}", headers=headers) as r:
                    progress = await r.json() if r.status == 200 else {}  # a 503 of a loaded machine: ask again
            except aiohttp.ClientError:  # a connection refused by a loaded machine: ask again
                progress = {}
            if progress.get("finished"):
                break
            await asyncio.sleep(0.25)
        elapsed = time.perf_counter() - started
        # The pushes the dispatcher hands to the (local) push adapter after delivery are part of the work: wait for them.
        while await db["push_batches"].count_documents({"state": "pending"}) or await db["pushes"].count_documents({"state": "pending"}):
            await asyncio.sleep(0.25)
        commands = await write_commands(mongo) - commands_before
        writes = await DocumentWrites(db, began_at).__aenter__()
        documents = await writes.settle(mongo)
        await writes.__aexit__(None, None, None)
        rows = await db["inbox"].aggregate([{"$match": {"client_id": agency["client_id"]}},
                                            {"$group": {"_id": "$account_id", "n": {"$sum": 1}}}])
        per_account = {row["_id"]: row["n"] async for row in rows}
    await mongo.close()
    assert progress["counts"]["delivered"] == n, progress
    assert len(per_account) == n and set(per_account.values()) == {1}, "not exactly one inbox item per recipient"
    return n / elapsed, documents, commands


async def database_inserts(stack: DevStack, n: int) -> float:
    mongo = create_client(stack.config.mongo_uri)
    collection = mongo[f"bench_raw_{uuid.uuid4().hex[:6]}"]["docs"]
    docs = [{"_id": f"d{i}", "payload": os.urandom(180), "status": "sending", "job_id": "j"} for i in range(n)]
    started = time.perf_counter()
    for i in range(0, n, 1000):
        await collection.insert_many(docs[i:i + 1000])
    elapsed = time.perf_counter() - started
    await mongo.close()
    return n / elapsed


def dispatcher_chunk() -> int:
    """Recipients per chunk as the stack's dispatcher has it: the variable this process passes on, else its default."""
    from libs.service.settings import declared_settings
    from services.notify.settings import NotifySettings

    variable = "HARBOUR_NOTIFY_CHUNK_SIZE"
    return int(os.environ.get(variable, declared_settings(NotifySettings)[variable]))


async def own_documents_rate(stack: DevStack, chunk: int) -> tuple[float, int]:
    """(notifications/s, notifications) at which the database takes nothing but each notification's own two documents:
    the batch's notifications and inbox items as it wrote them, copied with new ids into a scratch database with
    notify's indexes on both collections, `chunk` of each per transaction as the dispatcher writes a chunk. No
    reads, no events, no counters, no pushes: the most any design writing these documents could reach here."""
    from services.notify.collections import INBOX, INDEXES, NOTIFICATIONS
    from libs.store.indexes import apply_indexes

    mongo = create_client(stack.config.mongo_uri)
    source = mongo[f"{stack.config.db_prefix}notify"]
    notifications = await source[NOTIFICATIONS].find({"job_id": {"$exists": True}}).to_list()
    inbox = {doc["notification_id"]: doc async for doc in source[INBOX].find({"kind": "agency"})}
    pairs = [(n, inbox[n["_id"]]) for n in notifications if n["_id"] in inbox]
    scratch = mongo[f"bench_own_{uuid.uuid4().hex[:6]}"]
    await apply_indexes(scratch, [spec for spec in INDEXES if spec.collection in (NOTIFICATIONS, INBOX)])
    tag = uuid.uuid4().hex[:6]
    copies = [({**n, "_id": f"{n['_id']}-{tag}"}, {**m, "_id": f"{m['_id']}-{tag}", "notification_id": f"{n['_id']}-{tag}"})
              for n, m in pairs]
    started = time.perf_counter()
    for start in range(0, len(copies), chunk):
        part = copies[start:start + chunk]
        async with mongo.start_session() as session:
            async with await session.start_transaction():
                await scratch[INBOX].insert_many([m for _, m in part], session=session)
                await scratch[NOTIFICATIONS].insert_many([n for n, _ in part], ordered=False, session=session)
    elapsed = time.perf_counter() - started
    await mongo.drop_database(scratch.name)
    await mongo.close()
    return len(copies) / elapsed, len(copies)


async def broker_rates(stack: DevStack, n: int) -> tuple[float, float]:
    topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
    await ensure_topics(stack.config.kafka_bootstrap, [Topic(topic, "bench", partitions=3)], with_dlq=False)
    producer = create_producer(stack.config.kafka_bootstrap, "bench")
    await producer.start()
    value = os.urandom(300)
    started = time.perf_counter()
    acks = [await producer.send(topic, value, key=str(i).encode()) for i in range(n)]
    await asyncio.gather(*acks)
    produce = n / (time.perf_counter() - started)
    await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=stack.config.kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=f"bench-{uuid.uuid4().hex[:6]}", enable_auto_commit=False)
    await consumer.start()
    got, started = 0, time.perf_counter()
    while got < n:
        batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
        got += sum(len(m) for m in batches.values())
    consume = n / (time.perf_counter() - started)
    await consumer.stop()
    return produce, consume


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--kill-dispatcher", action="store_true", help="SIGKILL the dispatcher mid-batch and start it again")
    args = parser.parse_args()
    if not 1 <= args.recipients <= 10_000:
        parser.error("--recipients must be between 1 and 10000")
    temp = tempfile.mkdtemp(prefix="bench-notify-", dir=REPO_ROOT / ".dev" if (REPO_ROOT / ".dev").exists() else None)
    stack = DevStack(StackConfig.free_ports(Path(temp)))
    print("starting a private stack...", flush=True)
    stack.up()
    try:
        e2e, documents, commands = asyncio.run(end_to_end(stack, args.recipients, args.kill_dispatcher))
        inserts = asyncio.run(database_inserts(stack, args.recipients))
        own_rate, own_count = asyncio.run(own_documents_rate(stack, dispatcher_chunk()))
        produce, consume = asyncio.run(broker_rates(stack, args.recipients))
    finally:
        stack.down()
        shutil.rmtree(temp, ignore_errors=True)
    print(f"{args.recipients} recipients, one batch, same run" + (", dispatcher killed once" if args.kill_dispatcher else ""))
    print(f"{'end to end (POST batch → all in inboxes)':45} {e2e:10.0f} notifications/s")
    print(f"{'database raw insert (insert_many of 1,000)':45} {inserts:10.0f} documents/s")
    print(f"{'broker raw produce (acks=all, idempotent)':45} {produce:10.0f} messages/s")
    print(f"{'broker raw consume':45} {consume:10.0f} messages/s")
    print(f"{'ratio end to end / database raw insert':45} {e2e / inserts:10.3f}   (goal ≥ 0.3)")
    print(f"{'database taking only their own two documents':45} {own_rate:10.0f} notifications/s   (each one's notification "
          f"and inbox item as the batch wrote them, {own_count} of each, notify's indexes, one transaction per chunk; "
          f"no reads, events or pushes)")
    print(f"{'  that ceiling / database raw insert':45} {own_rate / inserts:10.3f}   (the most any design writing these "
          "two documents reaches on this database)")
    print(f"{'  end to end / that ceiling':45} {e2e / own_rate:10.3f}   (what the batch's reads, events, counters and pushes cost)")
    notify_writes = sum(count for name, count in documents.items() if name not in NOT_PER_NOTIFICATION)
    print(f"{'documents written per notification':45} {notify_writes / args.recipients:10.2f}   (notify's change stream over the batch, "
          f"timed lease renewals and the local push adapter's push_log left out; goal ≤ 3)")
    print(f"{'  every write in notify’s database':45} {sum(documents.values()) / args.recipients:10.2f}   "
          + ", ".join(f"{name} {count}" for name, count in sorted(documents.items(), key=lambda item: -item[1])))
    print(f"{'write commands per notification':45} {commands / args.recipients:10.3f}   (serverStatus opcounters insert+update+delete, "
          "all databases; the local database counts a command once however many documents it writes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

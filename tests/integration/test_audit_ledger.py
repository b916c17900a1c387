"""signing's audit ledger against the real broker and database (services/signing/ledger).

Audit events published on a topic of this test's own are appended once each to the hash-chained log, also when
the process consuming and appending them is killed with SIGKILL mid-batch and another takes over (the events it
had handled come again and are not appended twice); its checkpoints verify. Then `python -m
services.signing.ledger verify`, run as the operator runs it, passes an untouched log and names the first record
that was altered, deleted or swapped, and a checkpoint whose signature was altered, each with exit status 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from libs.crypto.keyring import Keyring, new_key_value
from libs.events import CloudEvent, Publisher
from libs.events.audit import audit_event
from libs.events.consumer import PROCESSED_INDEXES
from libs.events.outbox import OUTBOX_INDEXES
from libs.events.partition_leases import LEASE_INDEXES
from libs.store import apply_indexes, create_client
from libs.tokens.keystore import KeyStore
from services.signing.ledger.chain import public_keys, record_of, verify_log
from services.signing.ledger.consumer import AuditConsumer
from services.signing.ledger.store import (CHECKPOINTS, INBOX, INDEXES, LOG, STATE, Ledger, consumer_handler, read_checkpoints,
                                           read_log)

from ..support.broker import new_topic, read_all
from ..support.database import CommandCounter
from ..support.polling import eventually

pytestmark = pytest.mark.integration

EXPORT_KEYS = "export_keys"

LEDGER_PROCESS = """
import asyncio, sys
from libs.crypto.keyring import Keyring
from libs.events import Publisher
from libs.store import create_client
from libs.tokens.keystore import KeyStore
from services.signing.ledger.consumer import AuditConsumer
from services.signing.ledger.store import Ledger, consumer_handler

async def main(uri, database, bootstrap, topic, group, kek):
    client = create_client(uri)
    db = client[database]
    producer = Publisher(bootstrap, "ledger-under-test")
    await producer.start()
    # Offsets are never committed before the kill: everything this process handled comes again to the next one.
    consumer = AuditConsumer(service="ledger-killed", group=group, topics=[topic], handler=consumer_handler(db),
                             mongo_client=client, db=db, dlq_producer=producer, bootstrap=bootstrap,
                             instance="ledger-test-instance", commit_every_s=3600, max_records=50)
    keys = KeyStore(client, db, Keyring.from_env_value(kek), max_token_lifetime_s=0, collection="export_keys")
    ledger = Ledger(client, db, keys=keys, issuer="http://gateway.test", batch=40, checkpoint_every_s=0.2,
                    lease_ttl_s=2, poll_interval_s=0.05, owner="killed-appender")
    await consumer.start()
    await asyncio.gather(consumer.run(), ledger.run())

asyncio.run(main(*sys.argv[1:]))
"""


def audit_events(n: int) -> list[CloudEvent]:
    return [audit_event(service="auth", subject=f"acct-{i % 7}", action="login", actor=f"client-{i % 3}",
                        outcome="success" if i % 5 else "failure", client_id=f"client-{i % 3}", n=i) for i in range(n)]


async def publish(bootstrap: str, topic: str, events: list[CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, event.to_json(), key=(event.subject or "").encode())
        await producer.flush()
    finally:
        await producer.stop()


async def prepared(db, kek: str) -> KeyStore:
    await apply_indexes(db, (*INDEXES, *PROCESSED_INDEXES, *LEASE_INDEXES, *OUTBOX_INDEXES))
    keys = KeyStore(db.client, db, Keyring.from_env_value(kek), max_token_lifetime_s=0, collection=EXPORT_KEYS)
    await keys.ensure()
    return keys


async def publish_raw(bootstrap: str, topic: str, value: bytes):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        return await producer.send_and_wait(topic, value, key=b"acct-0")
    finally:
        await producer.stop()


async def committed_and_ends(bootstrap: str, group: str, topic: str, partitions: int) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offset and the log's end, per partition of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: await consumer.committed(tp) or 0 for tp in tps}, {tp.partition: ends[tp] for tp in tps}
    finally:
        await consumer.stop()


def run_verify(infra, database: str, jwks_file, *extra: str) -> tuple[int, dict, str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "HARBOUR_MONGO_URI": infra.mongo_uri, "HARBOUR_SIGNING_DB": database,
           "HARBOUR_SANDBOX": "true"}
    done = subprocess.run([sys.executable, "-m", "services.signing.ledger", "verify", "--jwks", str(jwks_file), *extra],
                          env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}, done.stderr


async def test_events_are_appended_once_each_across_a_kill_mid_batch_and_checkpoints_verify(infra, scratch_database, tmp_path):
    db = scratch_database
    kek = new_key_value("ledger-test")
    keys = await prepared(db, kek)
    topic = await new_topic(infra.kafka_bootstrap, prefix="audit")
    group = f"ledger-{uuid.uuid4().hex[:6]}"
    events = audit_events(600)
    await publish(infra.kafka_bootstrap, topic.name, events[:300])
    raw = await publish_raw(infra.kafka_bootstrap, topic.name, b"not a CloudEvent")  # dead-lettered, the rest goes on
    await publish(infra.kafka_bootstrap, topic.name, events[300:])

    # 1. A process consumes and appends until a good part of the log is written, and is killed with SIGKILL.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LEDGER_PROCESS, infra.mongo_uri, db.name, infra.kafka_bootstrap, topic.name, group, kek,
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        await eventually(lambda: _at_least(db[LOG], 150), timeout_s=60)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
    appended_before = await db[LOG].count_documents({})
    # Received (in the inbox or already appended) but never committed to the broker: all of it comes again.
    handled_before = appended_before + await db[INBOX].count_documents({})
    assert appended_before >= 150 and handled_before > 0
    # What the killed process committed to the broker is not delivered again. It commits no offsets on a timer
    # (commit_every_s=3600), but does when its partitions change hands (a lease renewal late on a loaded machine):
    # the records past the committed offsets are what comes again.
    committed, ends = await committed_and_ends(infra.kafka_bootstrap, group, topic.name, topic.partitions)
    again = sum(ends[p] - committed[p] for p in ends) - (1 if raw.offset >= committed[raw.partition] else 0)
    print(f"\nthe killed process had appended {appended_before}, handled {handled_before}; committed {committed} of {ends}")

    # 2. Another process takes over: the same consumer group, a new appender (once the killed one's lease lapses).
    producer = Publisher(infra.kafka_bootstrap, "ledger-test-dlq")
    await producer.start()
    consumer = AuditConsumer(service="ledger-restarted", group=group, topics=[topic.name], handler=consumer_handler(db),
                             mongo_client=db.client, db=db, dlq_producer=producer, bootstrap=infra.kafka_bootstrap,
                             instance="ledger-test-instance", max_records=50)
    ledger = Ledger(db.client, db, keys=keys, issuer="http://gateway.test", batch=40, checkpoint_every_s=0.2,
                    lease_ttl_s=2, poll_interval_s=0.05, owner="restarted-appender")
    await consumer.start()
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(ledger.run())]
    try:
        await eventually(lambda: _exactly(db[LOG], 600), timeout_s=90)
        await eventually(lambda: _inbox_empty(db), timeout_s=30)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
    await ledger.checkpoint()

    # Every event once, at seq 1..600 with no gap; what the killed process had handled came again (duplicates).
    docs = await db[LOG].find().sort("_id", 1).to_list()
    assert [d["_id"] for d in docs] == list(range(1, 601))
    assert sorted(d["event_id"] for d in docs) == sorted(e.id for e in events)
    assert {d["record"]["id"]: d["record"]["data"]["n"] for d in docs} == {e.id: e.data["n"] for e in events}
    consumed = {outcome: REGISTRY.get_sample_value("harbour_events_consumed_total", {
        "service": "ledger-restarted", "group": group, "topic": topic.name, "outcome": outcome}) or 0
        for outcome in ("processed", "duplicate")}
    # Every event past the committed offsets came again (all 600 when nothing was committed), each counted once...
    assert consumed["processed"] + consumed["duplicate"] == again, (consumed, again)
    # ...and those the killed process had received were known (in the inbox or the log), not received twice.
    assert consumed["duplicate"] >= handled_before - (600 - again) and consumed["duplicate"] > 0, (consumed, handled_before, again)
    # (Dead-lettered by the killed process and again by its successor: the offset past it was never committed.)
    assert {m.value for m in await read_all(infra.kafka_bootstrap, topic.dlq, 1)} == {b"not a CloudEvent"}

    # The checkpoints (the killed process's and ours) verify, the last covering all 600.
    checkpoints = await read_checkpoints(db)
    assert len(checkpoints) >= 2 and checkpoints[-1]["size"] == 600
    report = verify_log(await read_log(db), checkpoints, public_keys(await keys.jwks()), issuer="http://gateway.test")
    assert report.ok, report.as_json()
    assert report.checkpoints == len(checkpoints) and report.size == 600

    # And the operator's command agrees, with the keys as published (a JWKS file).
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(await keys.jwks()))
    status, out, err = run_verify(infra, db.name, jwks, "--issuer", "http://gateway.test")
    assert status == 0, (out, err)
    assert out["ok"] and out["size"] == 600 and out["checkpoints_verified"] == len(checkpoints)
    assert "audit ledger verified: 600 records" in err


@pytest.mark.parametrize("linger_s", [2.0])
async def test_a_busy_streams_events_go_into_the_inbox_many_per_transaction(infra, scratch_database, linger_s):
    """Audit events arrive a few at a time (a login's two as its decision commits); after a partial batch the ledger's
    consumer lingers, and what came meanwhile goes in one transaction per partition, not one per arrival."""
    inserts = CommandCounter("insert", INBOX)  # one per receiving transaction
    client = create_client(infra.mongo_uri, event_listeners=[inserts])
    db = client[scratch_database.name]
    await apply_indexes(db, (*INDEXES, *PROCESSED_INDEXES, *LEASE_INDEXES))
    topic = await new_topic(infra.kafka_bootstrap, prefix="audit")  # two partitions
    events = audit_events(100)
    dlq = Publisher(infra.kafka_bootstrap, "ledger-linger-dlq")
    await dlq.start()
    consumer = AuditConsumer(service="ledger-linger", group=f"linger-{uuid.uuid4().hex[:6]}", topics=[topic.name],
                             handler=consumer_handler(db), mongo_client=client, db=db, dlq_producer=dlq,
                             bootstrap=infra.kafka_bootstrap, linger_s=linger_s)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    await consumer.start()
    task = asyncio.create_task(consumer.run())

    async def burst(batch: list[CloudEvent]) -> None:
        for event in batch:
            await producer.send(topic.name, event.to_json(), key=(event.subject or "").encode())
        await producer.flush()

    try:
        await burst(events[:10])
        await eventually(lambda: _exactly(db[INBOX], 10), timeout_s=30)
        first = inserts.count
        for start in range(10, 100, 10):  # nine more, 50 ms apart (arrivals over time, as logins decide)
            await asyncio.sleep(0.05)
            await burst(events[start:start + 10])
        await eventually(lambda: _exactly(db[INBOX], 100), timeout_s=30)
        # The ninety in a few transactions per partition: 4 here (a fetch returns what one fetch response brought per
        # partition), where without lingering each burst took one per partition (18 here, with `linger_s=0`).
        assert inserts.count - first <= 6, (first, inserts.count)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
        await dlq.stop()
        await client.close()


async def _at_least(collection, n: int) -> bool:
    return await collection.count_documents({}) >= n


async def _exactly(collection, n: int) -> bool:
    return await collection.count_documents({}) == n


async def _inbox_empty(db) -> bool:
    return await db[INBOX].count_documents({}) == 0


# -- tampering, each detected by the verify command ---------------------------------------------------


@pytest.fixture
async def ledger_of_30(infra, scratch_database, tmp_path):
    """A ledger of 30 records (appended in batches of 8) with checkpoints at 16 and 30, and its keys' JWKS file."""
    db = scratch_database
    keys = await prepared(db, new_key_value("ledger-tamper"))
    ledger = Ledger(db.client, db, keys=keys, issuer="http://gateway.test", batch=8)
    events = audit_events(30)
    for i, event in enumerate(events):
        await db[INBOX].insert_one({"_id": event.id, "record": record_of(event.model_dump(mode="json")),
                                    "received_at": datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC)})
    while await ledger.append_once():
        if (await ledger.head()).seq == 16:
            await ledger.checkpoint()
    await ledger.checkpoint()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(await keys.jwks()))
    status, out, _ = run_verify(infra, db.name, jwks)
    assert status == 0 and out["size"] == 30 and out["checkpoints_verified"] == 2  # untouched, it verifies
    return db, jwks


def first_problem(infra, db, jwks) -> dict:
    status, out, err = run_verify(infra, db.name, jwks)
    assert status == 1, (out, err)
    assert "AUDIT LEDGER FAILED VERIFICATION" in err
    return out["first_problem"]


async def test_verify_names_a_record_whose_details_were_altered(infra, ledger_of_30):
    db, jwks = ledger_of_30
    await db[LOG].update_one({"_id": 12}, {"$set": {"record.data.outcome": "success-after-all"}})
    problem = first_problem(infra, db, jwks)
    assert (problem["kind"], problem["seq"]) == ("changed", 12)


async def test_verify_names_a_deleted_record(infra, ledger_of_30):
    db, jwks = ledger_of_30
    await db[LOG].delete_one({"_id": 9})
    problem = first_problem(infra, db, jwks)
    assert (problem["kind"], problem["seq"]) == ("removed", 9)


async def test_verify_names_the_last_records_deleted_by_their_checkpoint(infra, ledger_of_30):
    db, jwks = ledger_of_30
    await db[LOG].delete_many({"_id": {"$gt": 27}})
    problem = first_problem(infra, db, jwks)
    assert (problem["kind"], problem["seq"]) == ("removed", 28)


async def test_verify_names_two_records_swapped(infra, ledger_of_30):
    db, jwks = ledger_of_30
    a, b = await db[LOG].find_one({"_id": 20}), await db[LOG].find_one({"_id": 21})
    # Each keeps its place (its _id) and takes the other's content and hashes: the order of the two is exchanged.
    await db[LOG].delete_many({"_id": {"$in": [20, 21]}})
    await db[LOG].insert_many([{**b, "_id": 20}, {**a, "_id": 21}])
    problem = first_problem(infra, db, jwks)
    assert (problem["kind"], problem["seq"]) == ("reordered", 20)


async def test_verify_names_a_checkpoint_whose_signature_was_altered(infra, ledger_of_30):
    db, jwks = ledger_of_30
    checkpoint = await db[CHECKPOINTS].find_one({"_id": 16})
    header, payload, signature = checkpoint["jws"].split(".")
    flipped = ("B" if signature[10] == "A" else "A")
    await db[CHECKPOINTS].update_one({"_id": 16}, {"$set": {"jws": f"{header}.{payload}.{signature[:10]}{flipped}{signature[11:]}"}})
    problem = first_problem(infra, db, jwks)
    assert (problem["kind"], problem["seq"]) == ("checkpoint", 16)
    assert "signature" in problem["detail"]


async def test_an_exported_file_verifies_and_an_edit_to_it_is_found(infra, ledger_of_30, tmp_path):
    db, jwks = ledger_of_30
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "HARBOUR_MONGO_URI": infra.mongo_uri, "HARBOUR_SIGNING_DB": db.name,
           "HARBOUR_SANDBOX": "true"}
    file = tmp_path / "ledger.jsonl"
    exported = subprocess.run([sys.executable, "-m", "services.signing.ledger", "export", str(file)], env=env,
                              capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0 and json.loads(exported.stdout) == {"entries": 30, "checkpoints": 2, "file": str(file)}
    status, out, _ = run_verify(infra, "nothing-there", jwks, "--file", str(file))
    assert status == 0 and out["size"] == 30
    lines = file.read_text().splitlines()
    entry = json.loads(lines[2 + 4])  # seq 5
    entry["entry"]["record"]["subject"] = "acct-someone-else"
    lines[6] = json.dumps(entry)
    file.write_text("\n".join(lines) + "\n")
    status, out, _ = run_verify(infra, "nothing-there", jwks, "--file", str(file))
    assert status == 1 and (out["first_problem"]["kind"], out["first_problem"]["seq"]) == ("changed", 5)


async def test_two_appenders_at_once_neither_fork_the_chain_nor_leave_a_gap(infra, scratch_database):
    """The lease keeps one appender; should two run anyway (one paused past its lease), the log stays one chain."""
    db = scratch_database
    await prepared(db, new_key_value("ledger-race"))
    events = audit_events(400)
    await db[INBOX].insert_many([{"_id": e.id, "record": record_of(e.model_dump(mode="json")),
                                  "received_at": datetime(2026, 1, 1, tzinfo=UTC), "n": n} for n, e in enumerate(events)])
    first, second = (Ledger(db.client, db, batch=25, owner=owner) for owner in ("one", "two"))

    counts = [0, 0]
    for turn in range(200):  # no lease taken: each round both append at once over the same inbox, by turns first
        pair = (first, second) if turn % 2 == 0 else (second, first)
        appended = await asyncio.gather(*(ledger.append_once() for ledger in pair))
        for ledger, n in zip(pair, appended):
            counts[0 if ledger is first else 1] += n
        if not await db[INBOX].count_documents({}):
            break
    # Which one wins a round is the database's timing (one may win them all); what matters is one chain, no gap.
    assert sum(counts) == 400, counts
    entries = await read_log(db)
    assert [e["seq"] for e in entries] == list(range(1, 401))
    assert sorted(e["record"]["id"] for e in entries) == sorted(e.id for e in events)
    assert verify_log(entries, [], {}).ok


async def test_a_head_out_of_step_with_the_log_is_moved_to_the_logs_end_before_appending(infra, scratch_database):
    """A backup taken while the ledger ran may copy the head and the log at different moments: the log is the truth."""
    db = scratch_database
    await prepared(db, new_key_value("ledger-head"))
    events = audit_events(30)
    inbox = [{"_id": e.id, "record": record_of(e.model_dump(mode="json")), "received_at": datetime(2026, 1, 1, tzinfo=UTC),
              "n": n} for n, e in enumerate(events)]
    ledger = Ledger(db.client, db, batch=10)
    await db[INBOX].insert_many(inbox[:10])
    assert await ledger.append_once() == 10
    await db[STATE].update_one({"_id": "head"}, {"$set": {"seq": 4, "chain": "00" * 32}})  # behind the log
    await db[INBOX].insert_many(inbox[10:20])
    assert await ledger.append_once() == 10
    await db[STATE].update_one({"_id": "head"}, {"$set": {"seq": 27, "chain": "11" * 32}})  # past the log's end
    await db[INBOX].insert_many(inbox[20:])
    assert await ledger.append_once() == 10
    entries = await read_log(db)
    assert [e["seq"] for e in entries] == list(range(1, 31)) and verify_log(entries, [], {}).ok
    assert (await ledger.head()).seq == 30

"""The audit ledger in signing's database: the inbox the consumer fills, the append-only log, its signed checkpoints.

- `audit_inbox`: each audit event received, by its CloudEvent id, written by the consumer of `audit.events`
  (consumer.py: a fetched batch per transaction; an id already in the inbox or the log is not added again).
- `audit_log`: the records, `_id` = seq (1, 2, ...), with `event_id` (unique), `record`, `leaf`, `chain` (hex),
  `appended_at`. Written only by the appender holding the `audit_lease`, in batches: one transaction takes up to
  `batch` inbox entries, appends them after the head and removes them from the inbox. Two processes that both
  think they hold the lease both compute the same next seqs, and `_id` being unique, the second one's batch fails
  and rolls back: no gap, no fork. A crash rolls a batch back whole.
- `audit_state`: `head` (seq and chain of the last record, moved in each batch's transaction: one read by `_id`,
  where finding the log's last record by sorting costs a scan of the log on the local database server) and
  `checkpoint` (a copy of the latest checkpoint, for the API). The log is the truth: before appending, the head is
  checked against it by `_id` and moved to the log's actual end should they differ (a backup taken while the
  ledger ran copies the two collections at slightly different moments).
- `audit_checkpoints`: `_id` = size, the signed checkpoint (JWS) of the log at that size, written with its
  `audit.checkpoint` event on `audit.checkpoints` (through the outbox, in the same transaction).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from libs.background import repeat_passes, wake_up
from libs.clock import Clock, SystemClock
from libs.events import CloudEvent
from libs.events.outbox import Outbox
from libs.events.partition_leases import RELEASE_TIMEOUT_S
from libs.service.logging import get_logger
from libs.store import in_transaction, index
from libs.tokens.jws import sign
from libs.tokens.keystore import KeyStore

from .chain import CHECKPOINT_TYP, GENESIS, Entry, append, checkpoint_claims, record_of
from .metrics import APPENDED, LEDGER_SIZE, WITHHELD, checkpoint_signed
from .privacy import screen

INBOX = "audit_inbox"
LOG = "audit_log"
# The appender's loop, woken when the consumer puts events into the inbox (libs/background.wake_up).
APPENDER = "audit ledger"
CHECKPOINTS = "audit_checkpoints"
LEASE = "audit_lease"
STATE = "audit_state"
HEAD_ID = "head"
LATEST_CHECKPOINT_ID = "checkpoint"

INDEXES = (
    index(INBOX, "received_at", "n"),
    index(LOG, "event_id", unique=True),
    index(LOG, "record.subject", "_id"),
)

log = get_logger("harbour.signing.ledger")


def screened_record(event: CloudEvent) -> dict[str, Any]:
    """What the ledger keeps of an audit event, personal data withheld (privacy.py)."""
    record = record_of(event.model_dump(mode="json"))
    record["data"], withheld = screen(record["data"])
    if withheld:
        WITHHELD.inc(withheld)
        log.warning("personal data withheld from an audit record", event_id=event.id, action=record["data"].get("action"))
    return record


async def receive(db: AsyncDatabase, event: CloudEvent, session: AsyncClientSession) -> None:
    """One audit event kept for the appender (once: a second delivery finds it; one already in the log the appender
    drops). The consumer's one-event path (consumer.py falls back to it for a batch that failed)."""
    await db[INBOX].update_one({"_id": event.id}, {"$setOnInsert": {"record": screened_record(event),
                                                                    "received_at": datetime.now(UTC)}},
                               upsert=True, session=session)
    wake_up(APPENDER)


async def receive_many(db: AsyncDatabase, events: list[CloudEvent], session: AsyncClientSession) -> int:
    """The events neither in the inbox nor in the log yet, put into the inbox; how many were."""
    by_id = {event.id: event for event in events}
    ids = list(by_id)
    seen = {doc["_id"] for doc in await db[INBOX].find({"_id": {"$in": ids}}, {"_id": 1}, session=session).to_list()}
    seen |= {doc["event_id"] for doc in await db[LOG].find({"event_id": {"$in": ids}}, {"event_id": 1},
                                                           session=session).to_list()}
    now = datetime.now(UTC)
    # `n`: the order they came in (a partition's order: one subject's events in the order they were written).
    fresh = [{"_id": event_id, "record": screened_record(event), "received_at": now, "n": n}
             for n, (event_id, event) in enumerate(by_id.items()) if event_id not in seen]
    if fresh:
        await db[INBOX].insert_many(fresh, session=session)
        wake_up(APPENDER)
    return len(fresh)


def consumer_handler(db: AsyncDatabase):
    async def handle(event: CloudEvent, session: AsyncClientSession) -> None:
        if event.type == "audit.recorded":
            await receive(db, event, session)

    return handle


@dataclass(frozen=True)
class Head:
    seq: int
    chain: str

    @classmethod
    def of(cls, state: dict[str, Any] | None) -> "Head":
        return cls(state["seq"], state["chain"]) if state else cls(0, GENESIS.hex())


async def settled_head(db: AsyncDatabase, head: Head, session: AsyncClientSession | None = None) -> Head:
    """`head` checked against the log by `_id` (two reads when they agree): the log's actual last record."""
    seq = head.seq
    at = await db[LOG].find_one({"_id": seq}, {"chain": 1}, session=session) if seq else None
    while seq and at is None:  # the head is past the log's end
        seq -= 1
        at = await db[LOG].find_one({"_id": seq}, {"chain": 1}, session=session) if seq else None
    chain = at["chain"] if at else GENESIS.hex()
    while (following := await db[LOG].find_one({"_id": seq + 1}, {"chain": 1}, session=session)) is not None:
        seq, chain = seq + 1, following["chain"]  # the log is past the head
    if (seq, chain) != (head.seq, head.chain):
        log.error("the ledger's head did not match its log; moved to the log's end", head=head.seq, log_end=seq)
    return Head(seq, chain)


class Ledger:
    def __init__(self, mongo: AsyncMongoClient, db: AsyncDatabase, *, keys: KeyStore | None = None, issuer: str = "", checkpoint_topic: str = "audit.checkpoints",
                 batch: int = 500, checkpoint_every_s: float = 10.0, lease_ttl_s: float = 10.0,
                 poll_interval_s: float = 0.5, clock: Clock | None = None, owner: str | None = None) -> None:
        self.mongo = mongo
        self.db = db
        self.keys = keys
        self.issuer = issuer
        self.checkpoint_topic = checkpoint_topic
        self.batch = batch
        self.checkpoint_every_s = checkpoint_every_s
        self.lease_ttl_s = lease_ttl_s
        self.poll_interval_s = poll_interval_s
        self.clock = clock or SystemClock()
        self.owner = owner or f"signing-ledger:{os.getpid()}:{os.urandom(4).hex()}"
        self._renewed_at = -math.inf
        self._checkpointed_at = -math.inf
        self.last_progress = time.monotonic()

    # -- the single writer ------------------------------------------------------------------

    async def hold_lease(self) -> bool:
        """Hold the appender's lease (renewed once a third of its time has gone), as the outbox relay holds its own."""
        if time.monotonic() - self._renewed_at < self.lease_ttl_s / 3:
            return True
        started, now = time.monotonic(), datetime.now(UTC)
        held = {"$set": {"owner": self.owner, "expires_at": now + timedelta(seconds=self.lease_ttl_s)}}
        leases = self.db[LEASE]
        if (await leases.update_one({"_id": "appender", "owner": self.owner}, held)).matched_count == 0:
            if (await leases.update_one({"_id": "appender", "expires_at": {"$lt": now}}, held)).matched_count == 0:
                try:
                    await leases.insert_one({"_id": "appender", **held["$set"]})
                except DuplicateKeyError:
                    self._renewed_at = -math.inf
                    return False
        self._renewed_at = started
        return True

    async def release_lease(self, timeout_s: float = RELEASE_TIMEOUT_S) -> None:
        """Give the appender's lease back at a clean stop. Bounded: a stop must not wait on a database that does not
        answer (a signing service in tests/service once waited over 60 s here, its append just cancelled); the
        lease lapses by itself."""
        self._renewed_at = -math.inf
        try:
            with pymongo.timeout(timeout_s):
                await self.db[LEASE].delete_one({"_id": "appender", "owner": self.owner})
        except PyMongoError:
            pass

    async def append_once(self) -> int:
        """Append one batch from the inbox; how many records it appended."""
        pending = await self.db[INBOX].find().sort([("received_at", 1), ("n", 1), ("_id", 1)]).limit(self.batch).to_list()
        if not pending:
            return 0

        async def work(session: AsyncClientSession) -> list[Entry]:
            head = await settled_head(self.db, Head.of(await self.db[STATE].find_one({"_id": HEAD_ID}, session=session)),
                                      session)
            ids = [doc["_id"] for doc in pending]
            # Already in the log (an earlier batch committed, then its inbox entry came again): not twice.
            present = {doc["event_id"] for doc in await self.db[LOG].find(
                {"event_id": {"$in": ids}}, {"event_id": 1}, session=session).to_list()}
            fresh = [doc for doc in pending if doc["_id"] not in present]
            entries = append(head.seq, bytes.fromhex(head.chain), [doc["record"] for doc in fresh])
            if entries:
                now = datetime.now(UTC)
                await self.db[LOG].insert_many([
                    {"_id": e.seq, "event_id": e.record["id"], "record": e.record, "leaf": e.leaf, "chain": e.chain,
                     "appended_at": now} for e in entries], session=session)
                await self.db[STATE].replace_one({"_id": HEAD_ID}, {"seq": entries[-1].seq, "chain": entries[-1].chain,
                                                                    "updated_at": now}, upsert=True, session=session)
            await self.db[INBOX].delete_many({"_id": {"$in": ids}}, session=session)
            return entries

        try:
            entries = await in_transaction(self.mongo, work)
        except DuplicateKeyError:
            self._renewed_at = -math.inf  # someone else appends: look at the lease again
            log.warning("another appender appended at the same place; batch rolled back")
            return 0
        if entries:
            APPENDED.inc(len(entries))
            LEDGER_SIZE.set(entries[-1].seq)
        return len(entries)

    async def head(self) -> Head:
        return Head.of(await self.db[STATE].find_one({"_id": HEAD_ID}))

    # -- checkpoints -------------------------------------------------------------------------

    async def checkpoint(self, *, force: bool = False) -> dict[str, Any] | None:
        """Sign and store a checkpoint of the log as it is now, if it grew since the last one (or `force`)."""
        if self.keys is None:
            return None
        head = await self.head()
        latest = await latest_checkpoint(self.db)
        if latest is not None and latest["size"] >= head.seq and not force:
            return None
        now = self.clock.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as the database keeps it: the API shows what was signed
        key = await self.keys.current()
        claims = checkpoint_claims(issuer=self.issuer, size=head.seq, head=head.chain,
                                   time=now.isoformat().replace("+00:00", "Z"), iat=int(now.timestamp()))
        jws = sign(claims, key.private_key, {"kid": key.kid, "typ": CHECKPOINT_TYP})
        doc = {"_id": head.seq, "size": head.seq, "head": head.chain, "time": now, "kid": key.kid, "jws": jws}
        event = CloudEvent(source="/signing", type="audit.checkpoint", subject=str(head.seq),
                           data={"size": head.seq, "head": head.chain, "time": claims["time"], "jws": jws}, time=now)

        async def work(session: AsyncClientSession) -> None:
            await self.db[CHECKPOINTS].replace_one({"_id": head.seq}, doc, upsert=True, session=session)
            await self.db[STATE].replace_one({"_id": LATEST_CHECKPOINT_ID}, doc | {"_id": LATEST_CHECKPOINT_ID}, upsert=True,
                                             session=session)
            await Outbox(self.db).add(session, self.checkpoint_topic, event, key="audit")

        await in_transaction(self.mongo, work)  # its commit wakes this process's relay (the outbox's own doing)
        checkpoint_signed(now.timestamp())
        return doc

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Append while holding the lease; a checkpoint every `checkpoint_every_s` when the log grew."""
        await repeat_passes(self._pass, interval_s=self.poll_interval_s, full_batch=self.batch, max_backoff_s=10.0,
                            what="audit ledger pass", wake_name=APPENDER)

    async def _pass(self) -> int:
        appended = 0
        if await self.hold_lease():
            appended = await self.append_once()
            if time.monotonic() - self._checkpointed_at >= self.checkpoint_every_s:
                await self.checkpoint()
                self._checkpointed_at = time.monotonic()
        self.last_progress = time.monotonic()
        return appended

    async def ready(self, stuck_after_s: float = 30.0) -> None:
        idle = time.monotonic() - self.last_progress
        if idle > stuck_after_s:
            raise RuntimeError(f"the audit ledger's appender made no progress for {idle:.0f} s")


# -- reading, for the API, the verify command and the citizen's data tracker ----------------------


async def latest_checkpoint(db: AsyncDatabase) -> dict[str, Any] | None:
    """The latest checkpoint (size, head, time, kid, jws), by `_id` from audit_state."""
    return await db[STATE].find_one({"_id": LATEST_CHECKPOINT_ID})


async def entries_for(db: AsyncDatabase, subject: str, *, after_seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """The ledger's records about `subject` (an account id, a client id), oldest first, after `after_seq`:
    each {seq, record, leaf, chain, appended_at} — what the citizen's data tracker lists, with what proves it."""
    docs = await db[LOG].find({"record.subject": subject, "_id": {"$gt": after_seq}}).sort("_id", 1).limit(limit).to_list()
    return [entry_json(doc) for doc in docs]


def entry_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"seq": doc["_id"], "record": doc["record"], "leaf": doc["leaf"], "chain": doc["chain"],
            **({"appended_at": doc["appended_at"].isoformat()} if isinstance(doc.get("appended_at"), datetime) else {})}


async def read_log(db: AsyncDatabase) -> list[dict[str, Any]]:
    """Every record in seq order, as the verifier reads them."""
    return [entry_json(doc) for doc in await db[LOG].find().sort("_id", 1).to_list()]


async def read_checkpoints(db: AsyncDatabase) -> list[dict[str, Any]]:
    return [{"size": doc["size"], "head": doc["head"], "jws": doc["jws"]}
            for doc in await db[CHECKPOINTS].find().sort("_id", 1).to_list()]

"""The ledger's consumer of `audit.events`: the platform's consumer (libs/events/consumer.py), a batch per transaction.

Everything but the handling is the usual consumer's: partition leases in signing's database, offsets committed
after handling (once a second), rewinding after a broker disruption, readiness, lag, dead letters. The handling
differs: every service's audit events come here, one per sensitive action, so one transaction per event (the
processed-event marker and the inbox entry) would bound the ledger at what the database commits per second.
Instead each fetched batch of a partition is received in one transaction: the events whose id is already in the
inbox or in the log (the log's `event_id` is unique, and kept for good) are duplicates, the others go into the
inbox. A redelivery after a crash therefore adds nothing, however late it comes. A batch that fails for any other
reason than the database or broker being away is handled again one event at a time through the usual path
(retries, then the dead-letter topic), so one bad event never holds the others back.

A busy platform's audit events arrive a few at a time (a login's two, as its decision commits), so taking whatever
has arrived makes a transaction — an inbox read, a log read, an insert, a commit, then the appender's own — for every
few events. After a batch smaller than `max_records` the consumer waits `linger_s` (the service: 0.5 s) before it
fetches again, and the events that came meanwhile go in few transactions: during logins (bench/logins.py, pinned,
~33/s) the ledger's database operations per login went from 1.7 (0.25 s) to 1.06 (0.5 s), 4.2 without lingering once
the outbox relays sent each login's events on their own. An audit record lands in the ledger that much later; nothing
waits on it (checkpoints every 10 s).
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import ConsumerRecord
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs.events import CloudEvent, EventConsumer, InvalidEnvelope
from libs.events.consumer import INFRASTRUCTURE_ERRORS
from libs.events.metrics import EVENT_HANDLER_FAILURES, EVENTS_CONSUMED
from libs.service.logging import get_logger
from libs.store import in_transaction

from .store import receive_many

AUDIT_TYPE = "audit.recorded"
log = get_logger("harbour.signing.ledger.consumer")


class AuditConsumer(EventConsumer):
    def __init__(self, *, db: AsyncDatabase, max_records: int = 500, linger_s: float = 0.0, **options) -> None:
        super().__init__(db=db, **options)
        self.db = db
        self.max_records = max_records
        self.linger_s = linger_s

    async def consume_batch(self) -> int:
        batches = await self.fetch(max_records=self.max_records)
        for tp, messages in batches.items():
            await self.handle_messages(messages)
            self._uncommitted[tp] = messages[-1].offset + 1
        if time.monotonic() - self._committed_at >= self.commit_every_s:
            await self.commit()
        await self._record_lag()
        handled = sum(len(m) for m in batches.values())
        if 0 < handled < self.max_records and self.linger_s:
            await asyncio.sleep(self.linger_s)  # let the next few events gather (above)
        return handled

    async def handle_messages(self, messages: list[ConsumerRecord]) -> None:
        """One partition's fetched messages, in one transaction when they are all readable audit events."""
        wanted: list[tuple[ConsumerRecord, CloudEvent]] = []
        for message in messages:
            try:
                event = CloudEvent.from_json(message.value or b"")
            except InvalidEnvelope as exc:
                await self._dead_letter(message, f"invalid envelope: {exc}")
                self._count(message, "dead_lettered")
                continue
            if event.type == AUDIT_TYPE:
                wanted.append((message, event))
            else:
                self._count(message, "ignored")
        if not wanted:
            return
        events = [event for _, event in wanted]

        async def work(session: AsyncClientSession) -> int:
            return await receive_many(self.db, events, session)

        while True:
            try:
                fresh = await in_transaction(self.mongo_client, work)
                break
            except INFRASTRUCTURE_ERRORS:
                log.warning("infrastructure unavailable; retrying the batch", topic=messages[0].topic, events=len(events))
                await asyncio.sleep(1.0)
            except DuplicateKeyError:
                continue  # another reader of the partition (a lease changing hands) inserted one meanwhile: look again
            except Exception as exc:
                EVENT_HANDLER_FAILURES.labels(self.service, self.group, messages[0].topic).inc()
                log.warning("audit batch failed; handling its events one by one", error=type(exc).__name__)
                for message, _ in wanted:
                    await self.handle_message(message)
                return
        topic = messages[0].topic
        EVENTS_CONSUMED.labels(self.service, self.group, topic, "processed").inc(fresh)
        EVENTS_CONSUMED.labels(self.service, self.group, topic, "duplicate").inc(len(wanted) - fresh)
        self._progressed()

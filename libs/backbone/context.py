"""What a back-end service's use cases are handed: its settings, database, outbox and clock (no aiohttp).

Each service's `context.py` declares a frozen dataclass on top, with its
`source` and the fields of its own (keys, cipher, HSM...):

    @dataclass(frozen=True)
    class Formfill(ServiceContext):
        source: ClassVar[str] = "/formfill"
        cipher: FieldCipher

    await formfill.transaction(lambda session: formfill.publish(
        session, CONSENTS, "consent.revoked", receipt_id, {"receipt_id": receipt_id}))
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.clock import Clock, SystemClock
from libs.events.audit import audit_event
from libs.events.envelope import CloudEvent
from libs.events.outbox import Outbox, OutboxRelay
from libs.events.topics import AUDIT, Topic
from libs.store import after_commit, at_commit, in_transaction

T = TypeVar("T")

# Inside `ServiceContext.batched(session)`: that session and the (topic, event, key) triples published for it so far.
_BATCH: ContextVar[tuple[AsyncClientSession, list[tuple[str, CloudEvent, str | None]]] | None] = ContextVar(
    "outbox_batch", default=None)


@dataclass(frozen=True)
class ServiceContext:
    # The CloudEvents `source` of every event this service publishes, e.g. "/auth".
    source: ClassVar[str] = ""

    settings: Any
    mongo: AsyncMongoClient
    db: AsyncDatabase
    relay: OutboxRelay
    # Keyword-only, so a service's own fields may follow without defaults; tests pass a FrozenClock.
    clock: Clock = field(default_factory=SystemClock, kw_only=True)

    def __post_init__(self) -> None:
        if not self.source.startswith("/"):
            raise TypeError(f"{type(self).__name__} must declare its event source, e.g. source = \"/auth\"")

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run `work(session)` in one transaction (retried whole if transient).

        What `work` registered with `after_commit` runs once the transaction has committed (its last attempt's): the
        outbox relay is woken that way when `work` published events (libs/events/outbox.py)."""
        return await in_transaction(self.mongo, work)

    def after_commit(self, key: Any, callback: Callable[[], None]) -> bool:
        """Inside a transaction (this service's, or its event consumer's): call `callback` once it has committed (a
        later registration of the same `key` replaces an earlier one). Outside one: nothing is registered, and False
        says so. libs.store.after_commit."""
        return after_commit(key, callback)

    def at_commit(self, key: Any, callback: Callable[[], None]) -> None:
        """`callback` once the current transaction has committed, or now outside one. libs.store.at_commit."""
        at_commit(key, callback)

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.db)

    def event(self, event_type: str, subject: str | None, data: dict[str, Any] | None = None) -> CloudEvent:
        """A CloudEvent from this service, stamped by its clock."""
        return CloudEvent(source=self.source, type=event_type, subject=subject, data=data or {}, time=self.clock.now())

    async def publish(
        self,
        session: AsyncClientSession,
        topic: Topic | str,
        event_type: str,
        subject: str | None,
        data: dict[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> CloudEvent:
        """Add an event to the outbox inside the caller's transaction; `key` picks the partition (default: subject)."""
        event = self.event(event_type, subject, data)
        await self._add(session, _topic_name(topic), event, key)
        return event

    async def _add(self, session: AsyncClientSession, topic: str, event: CloudEvent, key: str | None) -> None:
        batch = _BATCH.get()
        if batch is not None and batch[0] is session:
            batch[1].append((topic, event, key))
        else:
            await self.outbox.add(session, topic, event, key=key)

    @contextlib.asynccontextmanager
    async def batched(self, session: AsyncClientSession) -> AsyncIterator[None]:
        """The events published (`publish`, `audit`) for `session` within the block go to the outbox in one insert
        at its end, in the order published (one database operation instead of one per event)."""
        items: list[tuple[str, CloudEvent, str | None]] = []
        token = _BATCH.set((session, items))
        try:
            yield
        finally:
            _BATCH.reset(token)
        await self.outbox.add_keyed(session, items)

    async def publish_many(self, session: AsyncClientSession, events: Iterable[tuple[Topic | str, CloudEvent]]) -> None:
        """Many (topic, event) pairs in one round trip (bulk senders); build each with `event(...)`."""
        await self.outbox.add_many(session, [(_topic_name(topic), event) for topic, event in events])

    async def audit(
        self, session: AsyncClientSession, *, subject: str, action: str, actor: str, outcome: str = "success", **details: Any
    ) -> None:
        """An `audit.recorded` event from this service, in the caller's transaction (ids and outcomes only)."""
        event = audit_event(service=self.source.removeprefix("/"), subject=subject, action=action, actor=actor,
                            outcome=outcome, **details)
        await self._add(session, AUDIT.name, event, None)


def _topic_name(topic: Topic | str) -> str:
    return topic if isinstance(topic, str) else topic.name

"""auth's clients served from memory, with the `clients.events` stream as the invalidation.

A token request, an authorization request, a logout: each needs the client
(its metadata and secret hash), and none changes it. So every auth process
keeps the clients it has read in memory — validated once, when read — and
answers `find_client` from there without a database call.

What keeps the memory right:

- the stream: every process follows `clients.events` itself (no consumer
  group, like the revocation list, libs/revocation/follower.py), from the
  end offsets it found when it started; `client.registered`, `client.updated`
  and `client.deleted` drop that client, and the next request reads it
  afresh. auth publishes one of them, in the writing transaction, whenever a
  client's metadata or secret changes or the client is deleted
  (registry.py), so a change made through any replica (or the operator
  CLI) reaches every replica within the outbox relay's latency plus one
  fetch — the same bound as the revocation list (about 2 s);
- the write path: the replica that wrote drops the client after its
  transaction committed, so its own next request sees the change at once;
- a miss is read from the database (a client registered elsewhere whose event
  is still on its way is not refused) and kept only if nothing was dropped
  while it was read, so a read that raced an invalidation never keeps the
  older copy;
- nothing is kept while the follower cannot vouch for the stream: before it
  is positioned, and once the broker has not confirmed it is current for
  `STALE_AFTER_S` (a broker away): then every lookup reads the database, as
  before, and what was kept is dropped.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from libs.background import stop_task
from libs.events.envelope import CloudEvent, InvalidEnvelope
from libs.events.kafka import caught_up, partitions_of, start_consumer, stop_consumer, whole_topic_consumer
from libs.events.topics import CLIENTS as CLIENTS_TOPIC
from libs.service.app import SETTINGS
from libs.service.logging import get_logger

from ..collections import CLIENTS as CLIENTS_COLLECTION

CONFIRM_EVERY_S = 0.5
CONFIRM_TIMEOUT_S = 5.0
# Without a confirmation from the broker for this long, the memory is not trusted (every lookup reads the database).
STALE_AFTER_S = 3.0
log = get_logger("harbour.auth.clients")


class ClientDirectory:
    """The clients of one database, as `client_from_doc` made them; `lookup` is the per-request question."""

    def __init__(self, db: AsyncDatabase, parse: Callable[[dict], object]) -> None:
        self.collection = db[CLIENTS_COLLECTION]
        self.parse = parse
        self._clients: dict[str, object] = {}
        self._generation = 0  # bumped by every invalidation
        self._confirmed_at = float("-inf")  # when the broker last confirmed the follower was current
        self.reads = 0  # database reads made for lookups (tests and the bench count them)
        self.events = 0  # client events applied

    @property
    def trusted(self) -> bool:
        return time.monotonic() - self._confirmed_at < STALE_AFTER_S

    def confirmed(self) -> None:
        self._confirmed_at = time.monotonic()

    def forget(self, client_id: str) -> None:
        self._generation += 1
        self._clients.pop(client_id, None)

    def forget_all(self) -> None:
        self._generation += 1
        self._clients.clear()

    async def lookup(self, client_id: str):
        """The client, or None: from memory when the stream vouches for it, else read (and kept if still current)."""
        if self.trusted:
            found = self._clients.get(client_id)
            if found is not None:
                return found
        elif self._clients:
            self.forget_all()
        generation = self._generation
        self.reads += 1
        doc = await self.collection.find_one({"_id": client_id})
        client = self.parse(doc) if doc else None
        if client is not None and self.trusted and generation == self._generation:
            self._clients[client_id] = client
        return client

    def apply(self, raw: bytes | None) -> None:
        """One record of `clients.events`: the client it names is read afresh next time."""
        try:
            event = CloudEvent.from_json(raw or b"")
        except (InvalidEnvelope, ValueError):
            log.error("unreadable client event skipped")
            self.forget_all()
            return
        self.events += 1
        client_id = event.subject or (event.data or {}).get("client_id")
        if isinstance(client_id, str):
            self.forget(client_id)
        else:
            self.forget_all()


# One directory per database the process serves (auth's; tests start several auths in one process).
_DIRECTORIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_last_asked: tuple[weakref.ref | None, ClientDirectory | None] = (None, None)


def directory_of(db: AsyncDatabase) -> ClientDirectory | None:
    # The database a process asked about last, recognised by identity: hashing an AsyncDatabase for the weak
    # mapping (its name and its client's topology) was ~2 % of a token request.
    global _last_asked
    last, directory = _last_asked
    if last is not None and last() is db:
        return directory
    directory = _DIRECTORIES.get(db)
    _last_asked = (weakref.ref(db), directory)
    return directory


def _registered(db: AsyncDatabase, directory: ClientDirectory | None) -> None:
    global _last_asked
    if directory is None:
        _DIRECTORIES.pop(db, None)
    else:
        _DIRECTORIES[db] = directory
    _last_asked = (None, None)


class ClientsFollower:
    """Follows `clients.events` from where it stood at start-up, for the directory's invalidation."""

    def __init__(self, directory: ClientDirectory, *, service: str, bootstrap: str, security=None,
                 topic: str = CLIENTS_TOPIC.name) -> None:
        self.directory = directory
        self.service = service
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the client events failed; retrying")
            # Whatever happened while not following is unknown: nothing kept is vouched for.
            self.directory._confirmed_at = float("-inf")
            self.directory.forget_all()
            await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        consumer = whole_topic_consumer(self.bootstrap, f"harbour-{self.service}-clients", self.security)
        await start_consumer(consumer)
        try:
            # auth creates its topics at start (libs/backbone), or Strimzi does: wait for it.
            partitions = await partitions_of(consumer, self.topic)
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            for tp, end in ends.items():
                consumer.seek(tp, end)
            # From here every change is seen: what is read from the database from now on may be kept.
            self.directory.forget_all()
            self.directory.confirmed()
            confirmed_at = time.monotonic()
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                for messages in batches.values():
                    for message in messages:
                        self.directory.apply(message.value)
                if time.monotonic() - confirmed_at > CONFIRM_EVERY_S:
                    confirmed_at = time.monotonic()
                    await self._confirm_current(consumer, partitions)
        finally:
            await stop_consumer(consumer)

    async def _confirm_current(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Caught up with the broker's end offsets, asked now: the memory is current (an empty fetch proves nothing)."""
        try:
            current = await caught_up(consumer, partitions, CONFIRM_TIMEOUT_S)
        except Exception as exc:
            log.warning("client events not confirmed current", error=type(exc).__name__)
            return
        if current:
            self.directory.confirmed()


def install_client_directory(app: web.Application, db_key: web.AppKey, parse: Callable[[dict], object]) -> None:
    """cleanup_ctx: the directory of the app's database, registered for `find_client`, and its follower."""
    settings = app[SETTINGS]

    async def lifecycle(app: web.Application):
        db = app[db_key]
        directory = ClientDirectory(db, parse)
        _registered(db, directory)
        follower = ClientsFollower(directory, service=settings.service, bootstrap=settings.kafka_bootstrap,
                                   security=settings.kafka_security)
        task = asyncio.create_task(follower.run(), name="client-directory")
        yield
        await stop_task(task)
        _registered(db, None)

    app.cleanup_ctx.append(lifecycle)

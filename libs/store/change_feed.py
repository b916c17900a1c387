"""Who waits for a collection's documents to be inserted (or changed), woken when one is: one change stream per
process, not a query per waiter.

A live stream (notify's inbox stream) waited by asking the database every half second whether something new had
come for its account: per open stream two queries a second, found or not, however quiet the platform. One
`ChangeFeed` per process follows the collection's change stream instead — inserts, by default, projected to the one field
that says whose document it is (never the document) — and wakes the waiters of that key; a woken waiter asks once.

A feed may follow other operations too (`operations`, e.g. updates): a change that carries no document is known by
its `documentKey`, so such a feed is keyed by `_id` (libs/held_requests.py: a request's status moved).

Where the database offers no change stream, or it breaks (a deployment without a replica set, a failover), every
waiter is woken every `poll_s` — what each did before — and the change stream is tried again after `retry_s`.
Whenever the change stream (re)opens, every waiter is woken once, so nothing inserted in a gap is missed. With no
waiter in the process the change stream is closed: nothing is asked of the database. A database that answers an
empty change stream at once instead of waiting `max_await_time_ms` (the dev stack's) is asked again no sooner than
`min_empty_wait_s` after the last ask.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from libs.service.logging import get_logger

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

log = get_logger("harbour.store.change_feed")
W = TypeVar("W")


class ChangeFeed(Generic[W]):
    """Waiters by key; each is an `asyncio.Event` set when a document of its key may have been inserted (a subclass
    may hand out something else: override `_new_waiter`, `inserted` and `look_everywhere`, as auth's prompt feed
    does to send each stream the new prompt itself)."""

    def __init__(self, collection: "AsyncCollection", key_field: str, *, fields: tuple[str, ...] = (), poll_s: float = 0.5,
                 retry_s: float = 5.0, min_empty_wait_s: float = 0.2, operations: tuple[str, ...] = ("insert",)) -> None:
        self.collection = collection
        self.key_field = key_field
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.min_empty_wait_s = min_empty_wait_s
        self.waiters: dict[Hashable, set[W]] = defaultdict(set)
        self.mode = "starting"  # change-stream | polling | idle (nobody waits here)
        self._waiting = asyncio.Event()  # set while someone waits in this process
        # What the change stream sends of each insert: the key and `fields`, never the rest of the document.
        projected = {f"fullDocument.{name}": 1 for name in (key_field, *fields)}
        self._pipeline = [{"$match": {"operationType": {"$in": list(operations)}}},
                          {"$project": {"operationType": 1, "documentKey": 1, **projected}}]

    # -- the waiters' side ------------------------------------------------------

    def subscribe(self, key: Hashable) -> W:
        """A waiter for `key` (the default: an event set whenever a document of `key` may have been inserted; clear
        it before looking)."""
        waiter = self._new_waiter()
        self.waiters[key].add(waiter)
        self._waiting.set()
        return waiter

    def unsubscribe(self, key: Hashable, waiter: W) -> None:
        waiters = self.waiters.get(key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self.waiters[key]
        if not self.waiters:
            self._waiting.clear()

    def _new_waiter(self) -> W:
        return asyncio.Event()  # type: ignore[return-value]

    def inserted(self, doc: dict[str, Any]) -> None:
        """A document was inserted (`doc`: its key and `fields`): wake its key's waiters."""
        key = doc.get(self.key_field)
        for waiter in self.waiters.get(key, ()) if key is not None else ():
            waiter.set()  # type: ignore[attr-defined]

    async def look_everywhere(self) -> None:
        """Something may have been inserted unseen (the change stream (re)opened; no change stream): every waiter
        looks."""
        for waiters in list(self.waiters.values()):
            for waiter in waiters:
                waiter.set()  # type: ignore[attr-defined]

    # -- following the collection ---------------------------------------------

    async def run(self) -> None:
        while True:
            if not self.waiters:
                self.mode = "idle"
                await self._waiting.wait()
            try:
                await self._follow_changes()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no change streams here, or the stream broke: every waiter looks, each poll_s
                log.warning("change stream unavailable; looking everywhere each poll", collection=self.collection.name,
                            error=type(exc).__name__)
                self.mode = "polling"
                await self._poll_for(self.retry_s)

    async def _follow_changes(self) -> None:
        async with await self.collection.watch(self._pipeline, max_await_time_ms=1000) as changes:
            self.mode = "change-stream"
            await self.look_everywhere()  # whatever came while nothing followed the collection is looked for once
            loop = asyncio.get_running_loop()
            while self.waiters:  # the last waiter gone: the change stream closes too, until the next one comes
                asked = loop.time()
                change = await changes.try_next()
                if change is None:
                    if (rest := self.min_empty_wait_s - (loop.time() - asked)) > 0:
                        await asyncio.sleep(rest)
                    continue
                self.inserted({**change.get("documentKey", {}), **(change.get("fullDocument") or {})})

    async def _poll_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until and self.waiters:
            try:
                await self.look_everywhere()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("looking for new documents failed", collection=self.collection.name, error=type(exc).__name__)
            await asyncio.sleep(self.poll_s)

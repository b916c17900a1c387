"""A caller waiting for a document to move (`?wait=`): held, not polling.

Who waits: a relying party for its citizen's answer (`?wait=` on a form-fill or signing request's status or result),
and a new phone for its pairing to be claimed and approved from the citizen's other phone (auth's
`GET /v1/devices/pairings/{id}?wait=`). `hold` is the one loop both use.

A relying party that polls a request every 50 ms sends twenty requests a second per waiting citizen — each one
through the gateway, a token check and a database read — and still learns of the answer up to 50 ms late. With
`?wait=N` (at most `MAX_WAIT_S`) the service holds the request until the request leaves its first status or `N`
seconds pass (never past the request's own expiry), then answers exactly as without it.

What wakes a held request: the transaction that moves its document, at its commit, when it ran in this process
(`answered_here`: from `ConsentedRequests.move`, or from auth's pairing claim and decision); otherwise the
collection's change stream, followed by one `ChangeFeed` per process while anyone is held (libs/store/change_feed.py:
updates, keyed by `_id`; where there is no change stream, every held request looks again each `poll_s`). A woken
request reads its document once.

A held request is a long poll (libs/service/overload.py): counted against the service's in-flight limit while it
reads, giving its place back while it waits (libs/waiting.py), outside the request deadline — its reads each get a
deadline of their own. At most `max_held` are held per process, and at most `max_held_per_client` of one holder's —
a relying party's, a pairing's — so that one client (or a client whose callers hang up, which a held request does
not notice until its wait ends) cannot take every place; beyond that a request is answered at once, as without
`wait`, and its caller polls as before. When the service stops, every held request is answered at once
(`release_all`, at aiohttp's shutdown: `install_long_polls`): a rolling restart does not wait out anyone's 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import pymongo
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field

from libs.background import event_or_timeout
from libs.store.change_feed import ChangeFeed
from libs.waiting import waiting_outside_the_count

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

T = TypeVar("T")

# Below the gateway's upstream read timeout (30 s), with room for the answer itself.
MAX_WAIT_S = 20


class WaitQuery(BaseModel):
    """The query of a request's status or result: how long to hold the caller for the citizen's answer."""

    model_config = ConfigDict(extra="ignore")  # other parameters (a cache-buster) are no concern of ours
    wait: int = Field(0, ge=0, le=MAX_WAIT_S)


WAIT_OUT_OF_RANGE = f"wait is not a whole number of seconds from 0 to {MAX_WAIT_S}"
HELD_FOR_THE_ANSWER = (
    f"With `wait` (seconds, at most {MAX_WAIT_S}): while the citizen has not answered, the request is held until they "
    "do, the wait passes or the request expires, then answered as without it — one request instead of polling "
    "(docs/api.md, waiting for the answer).")


def wait_query(until: str) -> tuple:
    """`wait` as the OpenAPI document declares it (libs/service/endpoints.py query_params); `until`: what ends it."""
    return (("wait", {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_S,
                      "description": f"hold the request up to this many seconds {until}"}, False),)


WAIT_QUERY = wait_query("while the citizen has not answered")

HELD = Gauge("harbour_requests_held", "Requests held now until what they ask after moves (?wait=): a relying party's "
             "for its citizen's answer, a new phone's for its pairing; by service.",
             ["service"])
NOT_HELD = Counter("harbour_requests_not_held_total", "Requests with ?wait= answered at once because the process (or "
                   "that client) held its limit already, by service.", ["service"])


class HeldRequests:
    """The requests held in this process until the document of one collection they ask after moves."""

    def __init__(self, service: str, requests: "AsyncCollection", *, max_held: int = 1000, max_held_per_client: int = 100,
                 read_timeout_s: float = 5.0, poll_s: float = 0.5) -> None:
        # A held request of this process is woken at the commit (answered_here): the change stream, for other
        # replicas' moves, need not be asked more than twice a second.
        self.feed: ChangeFeed[asyncio.Event] = ChangeFeed(requests, "_id", operations=("update", "replace"), poll_s=poll_s,
                                                          min_empty_wait_s=0.5)
        self.max_held = max_held
        self.max_held_per_client = max_held_per_client
        self._held_by_client: dict[str, int] = defaultdict(int)
        self.read_timeout_s = read_timeout_s
        self.held_count = 0
        self.closing = False  # the service is stopping: nothing more is held
        HELD.labels(service).set_function(lambda: self.held_count)
        self._not_held = NOT_HELD.labels(service)

    @contextlib.asynccontextmanager
    async def held(self, key: str, holder: str) -> AsyncIterator[asyncio.Event | None]:
        """An event set whenever the document `key` may have moved (clear it before reading); None when this process
        (or this holder) holds its limit already, or the service is stopping: answer at once."""
        if self.closing:
            yield None
            return
        if self.held_count >= self.max_held or self._held_by_client.get(holder, 0) >= self.max_held_per_client:
            self._not_held.inc()
            yield None
            return
        woken = self.feed.subscribe(key)
        self.held_count += 1
        self._held_by_client[holder] += 1
        try:
            yield woken
        finally:
            self.held_count -= 1
            self._held_by_client[holder] -= 1
            if not self._held_by_client[holder]:
                del self._held_by_client[holder]
            self.feed.unsubscribe(key, woken)

    async def hold(self, key: str, holder: str, wait_s: float, read: Callable[[], Awaitable[T]],
                   holdable_s: Callable[[T], float]) -> T:
        """`read()` now, and again each time `key` may have moved, while `holdable_s(doc)` — how much longer the
        document as read may be held for: 0 once it moved or expired — and `wait_s` last; the last read. Held
        (`held`) before the first read, so a move committed between the two is not missed; `holder` is whose share
        of the process's places it takes (a relying party's client id, a pairing's id)."""
        async with self.held(key, holder) as woken:
            doc = await self.read(read())
            if woken is None:
                return doc
            loop = asyncio.get_running_loop()
            until = loop.time() + wait_s
            while (left := min(until - loop.time(), holdable_s(doc))) > 0:
                with waiting_outside_the_count():  # no place among the requests in flight while it only waits
                    moved = await event_or_timeout(woken, left)
                if not moved or self.closing:
                    break  # the wait or the document's time is up, or the service is stopping: answered as it is
                woken.clear()
                doc = await self.read(read())
            return doc

    async def read(self, reading: Awaitable[T]) -> T:
        """One read of a held request, under a deadline of its own (the request itself has none while it waits)."""
        with pymongo.timeout(self.read_timeout_s):
            return await reading

    def answered_here(self, key: str) -> None:
        """The document `key` moved in a transaction of this process that has just committed: its held requests look
        now, not when the change stream next answers."""
        self.feed.inserted({"_id": key})

    async def release_all(self) -> None:
        """The service is stopping: every held request is answered now, as it is, and no more are held."""
        self.closing = True
        await self.feed.look_everywhere()  # every waiter woken; each sees `closing`

    async def run(self) -> None:
        """Follow the collection while anyone is held (idle otherwise); until cancelled."""
        await self.feed.run()

"""A shared cache (RFC 9111) for the public documents every relying party and app fetches: discovery, app links.

Only routes the table marks `cacheable` are considered (documents that change only with a release or the
configuration), and only when the request is one a shared cache may answer for anyone: a `GET` without a query,
credentials (`Authorization`, `Cookie`, `DPoP`), conditions (`If-…`) or a range. The upstream decides the rest with its own `Cache-Control`: an answer is stored only when
it is a `200` with an explicit lifetime (`s-maxage`, else `max-age`; no heuristic freshness), no `no-store`,
`no-cache` or `private`, no `Set-Cookie` and no `Vary`; and it is served only while fresh, with its `Age`.
A request's own `Cache-Control: no-cache` or `max-age=0` (or `Pragma: no-cache`) goes to the upstream and
stores the new answer, as does one whose `max-age=N` or `min-fresh=N` the stored copy does not satisfy; `no-store`
goes to the upstream and leaves the cache as it was.

Concurrent misses for one document are collapsed: the first goes upstream and the others wait for its answer
(a thousand relying parties starting at once reach auth as one request).

The key sets (`/oidc/jwks` and the services' JWKS) are not cached here, though their services allow a minute: a
rotation promotes the one key published in advance and publishes the next at once, and a copy held here for that
minute, on top of each verifier's own minute, would leave verifiers without the signing key after two rotations
in quick succession.

Entries are bounded in number and size, the least recently used dropped first. Pure logic, no aiohttp: the
gateway's handler does the I/O (app.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# Request headers that make an answer personal, conditional or partial: such a request is not served from the
# cache, nor is its answer stored (RFC 9111 §3.5 for Authorization; cookies and DPoP proofs are credentials too).
BYPASS_REQUEST_HEADERS = ("authorization", "cookie", "dpop", "range", "if-none-match", "if-modified-since",
                          "if-match", "if-unmodified-since", "if-range")
# Headers of the upstream's answer that belong to that one exchange, not to the document.
NOT_STORED = frozenset({"x-request-id", "age", "content-length"})
MAX_ENTRY_BYTES = 64 * 1024  # the gateway's buffered answers (proxy.BUFFERED_ANSWER_BYTES); larger ones stream


def directives(value: str | None) -> dict[str, str | None]:
    """`Cache-Control` as {directive: argument or None}, names lowercased, quotes removed (RFC 9111 §5.2)."""
    found: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, sep, argument = part.strip().partition("=")
        if name:
            found.setdefault(name.strip().lower(), argument.strip().strip('"') if sep else None)
    return found


def _seconds(argument: str | None) -> int | None:
    """A delta-seconds argument (RFC 9111 §1.2.2): digits only; anything else is invalid (None)."""
    return int(argument) if argument is not None and argument.isascii() and argument.isdigit() else None


def freshness(status: int, headers: Iterable[tuple[str, str]]) -> tuple[int, int] | None:
    """How long a shared cache may keep this answer from now (seconds: its lifetime less its `Age`) and that `Age`,
    in one pass over its headers; None: not storable."""
    cache_control, age = None, 0
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("set-cookie", "vary"):
            return None  # personal, or varying on something not in our key
        if lowered == "cache-control":
            cache_control = value if cache_control is None else f"{cache_control}, {value}"
        elif lowered == "age":
            age = _seconds(value.strip()) or 0
    if status != 200 or cache_control is None:
        return None
    found = directives(cache_control)
    if found.keys() & {"no-store", "no-cache", "private"}:
        return None
    lifetime = _seconds(found["s-maxage"]) if "s-maxage" in found else _seconds(found.get("max-age"))
    if lifetime is None or lifetime - age <= 0:
        return None
    return lifetime - age, age  # what is left of it once it reached us


def request_may_use_cache(method: str, query: str, headers: Mapping[str, str]) -> bool:
    """A request a shared cache may answer for anyone (or store the answer of): see the module's docstring."""
    return method == "GET" and not query and not any(name in headers for name in BYPASS_REQUEST_HEADERS)


@dataclass(frozen=True)
class Wanted:
    """What a caller's own directives ask of the cache (RFC 9111 §5.2.1)."""

    refetch: bool = False  # no-cache, max-age=0 or, without Cache-Control, Pragma: no-cache (and no-store)
    store: bool = True  # False for no-store: fetched for this caller only, the stored copy left as it is
    max_age_s: int | None = None  # a stored copy at most this old
    min_fresh_s: int = 0  # ... and fresh for at least this much longer


ANY_FRESH_COPY = Wanted()


def request_wants(headers: Mapping[str, str]) -> Wanted:
    found = directives(headers.get("Cache-Control"))
    if "no-store" in found:
        return Wanted(refetch=True, store=False)
    max_age = _seconds(found.get("max-age")) if "max-age" in found else None
    no_cache = "no-cache" in found or max_age == 0 or (not found and "no-cache" in headers.get("Pragma", "").lower())
    return Wanted(refetch=no_cache, max_age_s=max_age, min_fresh_s=_seconds(found.get("min-fresh")) or 0)


@dataclass(frozen=True)
class Entry:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float  # monotonic
    lifetime_s: int  # from stored_at
    age_when_stored_s: int = 0  # the answer's own Age (it may have come through another cache)

    def age_s(self, now: float) -> int:
        """The `Age` to send (RFC 9111 §5.1): the answer's own, plus how long it has been kept here."""
        return self.age_when_stored_s + int(now - self.stored_at)

    def fresh(self, now: float) -> bool:
        return now - self.stored_at < self.lifetime_s


class SharedCache:
    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def fresh(self, key: tuple[str, str], wanted: Wanted = ANY_FRESH_COPY) -> Entry | None:
        """The stored copy, if fresh and as fresh as the caller asks (else it fetches, and stores, a newer one)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self.clock()
        if not entry.fresh(now):
            del self._entries[key]
            return None
        if (wanted.max_age_s is not None and entry.age_s(now) > wanted.max_age_s) or \
                entry.lifetime_s - (now - entry.stored_at) < wanted.min_fresh_s:
            return None
        self._entries.move_to_end(key)
        return entry

    def store(self, key: tuple[str, str], status: int, reason: str, headers: Iterable[tuple[str, str]],
              body: bytes) -> Entry | None:
        """Keep the answer if the upstream allows it (its lifetime); the entry, or None when not stored."""
        headers = tuple(headers)
        kept_for = freshness(status, headers)
        if kept_for is None or len(body) > MAX_ENTRY_BYTES or self.max_entries <= 0:
            self._entries.pop(key, None)  # a document that stopped being cacheable is not served from before
            return None
        kept = tuple((name, value) for name, value in headers if name.lower() not in NOT_STORED)
        entry = Entry(status, reason, kept, body, self.clock(), *kept_for)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    # -- collapsing concurrent misses -----------------------------------------------------------------------------

    def in_flight(self, key: tuple[str, str]) -> asyncio.Future | None:
        """The answer another request is fetching for this key (it resolves to its Entry, or None), if any."""
        return self._pending.get(key)

    def begin(self, key: tuple[str, str]) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        return future

    def end(self, key: tuple[str, str], future: asyncio.Future, entry: Entry | None) -> None:
        """The fetch for `key` is over (stored, not storable, failed or cancelled): release who waits on it."""
        if self._pending.get(key) is future:
            del self._pending[key]
        if not future.done():
            future.set_result(entry)

"""Documents this auth process wrote and reads again soon, kept in memory for a fixed time (oidc/decided.py: logins
opened and decided here; approvals/queue.py: prompts queued here). The database stays the authority: whatever
reads from here is either immutable until it is done with, or checked by a conditional write."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

LIMIT = 10_000


class Remembered:
    """At most `limit` documents, each for a fixed time (a decided login: until its code expires). Every document is
    kept for the same time, so the oldest come first and an expired one is dropped as soon as another is remembered
    or recalled, one done with (a login decided; its code redeemed) at once: what is held is the work still on its
    way, not the last `limit` documents (10,000 decided login documents were ~50 MB of auth's memory, and the
    garbage collector walked them all)."""

    def __init__(self, limit: int = LIMIT, clock=time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._documents: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._documents)

    def remember(self, database: str, key: str, doc: dict[str, Any], *, for_s: float) -> None:
        now = self.clock()
        self._drop_expired(now)
        self._documents[(database, key)] = (now + for_s, doc)
        self._documents.move_to_end((database, key))
        while len(self._documents) > self.limit:
            self._documents.popitem(last=False)

    def recall(self, database: str, key: str) -> dict[str, Any] | None:
        now = self.clock()
        self._drop_expired(now)
        found = self._documents.get((database, key))
        if found is None:
            return None
        if now >= found[0]:
            del self._documents[(database, key)]
            return None
        return found[1]

    def forget(self, database: str, key: str) -> None:
        """Done with here (an opened login decided; a decided login's code redeemed): nothing reads it from memory any
        more (a late reader reads its document)."""
        self._documents.pop((database, key), None)

    def _drop_expired(self, now: float) -> None:
        while self._documents:
            key, (until, _) = next(iter(self._documents.items()))
            if until > now:
                return
            del self._documents[key]

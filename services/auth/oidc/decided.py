"""Browser logins kept in this process's memory: opened here until the phone claims them, decided here until
their code expires.

Opened (`OPENED`): the login page's transaction document, inserted by `login.start`, is remembered once the page
is drawn; it does not change until the citizen decides, so the phone's claim of the login (the app opened its
link: `login.claim`) reads it from memory instead of reading the document again. It is forgotten when the login is
decided, and kept at most OPENED_FOR_S (a claim later than that, or in another replica, reads the document).

Decided (`DECIDED`): the citizen's decision (approvals/decisions.py → login.on_decision) writes the login's outcome,
its code and its grant to the login's document; once that transaction has committed, the same values are
remembered here, so the browser's status poll, its completion and the relying party's token exchange read them
from memory instead of reading the document again.

The database stays the authority for everything single-use: the prompt's insert (one per login), the session's
insert (the cookie once), the code's conditional update (the code once, a second use revoking what the first
bought). A login opened or decided in another replica, or before this process started, is read from the database
as before.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

LIMIT = 10_000
# Logins opened and not yet decided: a page the citizen never scans is kept this long at most, and no more than
# OPENED_LIMIT of them (each a few kB), so a flood of anonymous page loads costs at most a few MB.
OPENED_FOR_S = 60.0
OPENED_LIMIT = 2_000


class RememberedLogins:
    """At most `limit` logins, each for a fixed time (a decided one: until its code expires). Every login is kept
    for the same time, so the oldest come first and an expired one is dropped as soon as another login is
    remembered or recalled, one done with (decided; its code redeemed) at once: what is held is the logins still on
    their way, not the last `limit` ones (10,000 decided login documents were ~50 MB of auth's memory, and the
    garbage collector walked them all)."""

    def __init__(self, limit: int = LIMIT, clock=time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._logins: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._logins)

    def remember(self, database: str, tx: str, doc: dict[str, Any], *, for_s: float) -> None:
        now = self.clock()
        self._drop_expired(now)
        self._logins[(database, tx)] = (now + for_s, doc)
        self._logins.move_to_end((database, tx))
        while len(self._logins) > self.limit:
            self._logins.popitem(last=False)

    def recall(self, database: str, tx: str) -> dict[str, Any] | None:
        now = self.clock()
        self._drop_expired(now)
        found = self._logins.get((database, tx))
        if found is None:
            return None
        if now >= found[0]:
            del self._logins[(database, tx)]
            return None
        return found[1]

    def forget(self, database: str, tx: str) -> None:
        """Done with here (an opened login decided; a decided login's code redeemed): nothing reads it from memory any
        more (a late reader reads its document)."""
        self._logins.pop((database, tx), None)

    def _drop_expired(self, now: float) -> None:
        while self._logins:
            key, (until, _) = next(iter(self._logins.items()))
            if until > now:
                return
            del self._logins[key]


OPENED = RememberedLogins(limit=OPENED_LIMIT)
DECIDED = RememberedLogins()

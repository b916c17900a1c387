"""Browser logins decided in this process, kept in memory until their code expires.

The citizen's decision (approvals/decisions.py → login.on_decision) writes the
login's outcome, its code and its grant to the login's document; once that
transaction has committed, the same values are remembered here, so the
browser's status poll, its completion and the relying party's token exchange
read them from memory instead of reading the document again. The database
stays the authority for everything single-use: the session's insert (the
cookie once), the code's conditional update (the code once, a second use
revoking what the first bought). A login decided in another replica, or
before this process started, is read from the database as before.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

LIMIT = 10_000


class DecidedLogins:
    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._logins: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()

    def remember(self, database: str, tx: str, doc: dict[str, Any], *, for_s: float) -> None:
        self._logins[(database, tx)] = (time.monotonic() + for_s, doc)
        self._logins.move_to_end((database, tx))
        while len(self._logins) > self.limit:
            self._logins.popitem(last=False)

    def recall(self, database: str, tx: str) -> dict[str, Any] | None:
        found = self._logins.get((database, tx))
        if found is None:
            return None
        if time.monotonic() >= found[0]:
            del self._logins[(database, tx)]
            return None
        return found[1]


DECIDED = DecidedLogins()

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

from ..remembered import Remembered

# Logins opened and not yet decided: a page the citizen never scans is kept this long at most, and no more than
# OPENED_LIMIT of them (each a few kB), so a flood of anonymous page loads costs at most a few MB.
OPENED_FOR_S = 60.0
OPENED_LIMIT = 2_000


OPENED = Remembered(limit=OPENED_LIMIT)
DECIDED = Remembered()

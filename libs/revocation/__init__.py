"""Revocation every service honours: auth publishes what it revokes, each process keeps an expiring list.

- events.py: what auth writes to the `revocations` topic (through its outbox, in the revoking transaction);
- projection.py: the in-memory list and the question "is this token refused?" (pure logic);
- follower.py: every process reads the topic from the beginning and follows it (no consumer group).

The bearer-token checks that consult the list are libs/callers.
"""

from .follower import REVOCATIONS, NotLoaded, Revocations, install_revocations
from .projection import RevocationList, subject_hash

__all__ = ["REVOCATIONS", "NotLoaded", "RevocationList", "Revocations", "install_revocations", "subject_hash"]

"""The life cycles of notify's documents, as GOV.UK Notify keeps them: one status set per entity and its allowed moves.

A notification (one per recipient):

  created ──(its time comes)──► sending ──► delivered ──► read
     ▲  (scheduled, or waiting       │
     │   for quiet hours to end)     ├──► suppressed (the citizen opted out of this agency)
     └───────────────────────────────┤
                                     └──► failed (recipient unknown or inactive, rendering failed)

A send starts `created` (due later) or `sending` (due now); a batch's
recipient unknown to notify starts `failed`. Every move is written with the
status it leaves in the update's filter (`NOTIFICATION.leaving`), so a redelivered or
concurrent attempt that finds the notification moved on changes nothing.

A job (a batch send) is `accepted` when stored and `expanded` once the
dispatcher has created its notifications. Pushes and status callbacks wait
in retry queues (libs/retry_queue.py) with states of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar


class NotificationStatus(StrEnum):
    CREATED = "created"
    SENDING = "sending"
    DELIVERED = "delivered"
    READ = "read"
    SUPPRESSED = "suppressed"
    FAILED = "failed"


class JobStatus(StrEnum):
    ACCEPTED = "accepted"
    EXPANDED = "expanded"


# The retry queues' documents (libs/retry_queue.py) have a `state`: pending until taken, or given up.
class PushState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class CallbackState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    GIVEN_UP = "given_up"


S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class Lifecycle(Generic[S]):
    starts: frozenset[S]
    transitions: Mapping[S, frozenset[S]]

    def allows(self, current: S, to: S) -> bool:
        return to in self.transitions[current]

    def leaving(self, to: S) -> S:
        """The one status a document moves to `to` from (each move in notify's life cycles has a single source)."""
        sources = [status for status, targets in self.transitions.items() if to in targets]
        if len(sources) != 1:
            raise ValueError(f"no single status leads to {to}")
        return sources[0]


NOTIFICATION = Lifecycle[NotificationStatus](
    starts=frozenset({NotificationStatus.CREATED, NotificationStatus.SENDING, NotificationStatus.FAILED}),
    transitions={
        NotificationStatus.CREATED: frozenset({NotificationStatus.SENDING}),
        NotificationStatus.SENDING: frozenset({NotificationStatus.DELIVERED, NotificationStatus.SUPPRESSED, NotificationStatus.FAILED,
                                               NotificationStatus.CREATED}),  # back to waiting: quiet hours began
        NotificationStatus.DELIVERED: frozenset({NotificationStatus.READ}),
        NotificationStatus.READ: frozenset(),
        NotificationStatus.SUPPRESSED: frozenset(),
        NotificationStatus.FAILED: frozenset(),
    })

JOB = Lifecycle[JobStatus](
    starts=frozenset({JobStatus.ACCEPTED}),
    transitions={JobStatus.ACCEPTED: frozenset({JobStatus.EXPANDED}), JobStatus.EXPANDED: frozenset()})

# The outcomes an agency hears about (its topic, its callback) and a job counts.
REPORTED = (NotificationStatus.DELIVERED, NotificationStatus.FAILED, NotificationStatus.SUPPRESSED, NotificationStatus.READ)

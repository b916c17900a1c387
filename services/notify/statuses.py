"""The life cycles of notify's documents, as GOV.UK Notify keeps them: one status set per entity and its allowed moves.

A notification (one per recipient):

  created ──(its time comes)──► sending ──► delivered ──► read
     ▲  (scheduled, or waiting       │  ╲          ▲          ▲
     │   for quiet hours to end)     │   ╲► sent ──┴──────────┘ (e-mail or SMS handed over: its receipt awaited)
     │                               │        └──► failed (the channel refused it, or its retries ran out)
     │                               ├──► suppressed (the citizen opted out of this agency)
     └───────────────────────────────┤
                                     └──► failed (recipient unknown or inactive, rendering failed)

A send starts `created` (due later) or `sending` (due now); a batch's
recipient unknown to notify starts `failed`. Every move is written with the
status it leaves in the update's filter (`NOTIFICATION.leaving`), so a redelivered or
concurrent attempt that finds the notification moved on changes nothing.

A job (a batch send) is `accepted` when stored and `expanded` once the
dispatcher has published its chunks (each notification is written when its
chunk is delivered, in the status it ends in: delivery.py). Pushes and status callbacks wait
in retry queues (libs/retry_queue.py) with states of their own.
"""

from __future__ import annotations

from enum import StrEnum

from libs.lifecycle import Lifecycle


class NotificationStatus(StrEnum):
    CREATED = "created"
    SENDING = "sending"
    SENT = "sent"  # in the inbox and queued for e-mail or SMS: delivered (or failed) when the channel's receipt comes
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
    SENT = "sent"  # in the inbox and queued for e-mail or SMS: delivered (or failed) when the channel's receipt comes
    DELIVERED = "delivered"
    GIVEN_UP = "given_up"


# A send starts created, sending or (a batch's unknown recipient) failed.
NOTIFICATION = Lifecycle[NotificationStatus](
    transitions={
        NotificationStatus.CREATED: frozenset({NotificationStatus.SENDING}),
        NotificationStatus.SENDING: frozenset({NotificationStatus.DELIVERED, NotificationStatus.SUPPRESSED, NotificationStatus.FAILED,
                                               NotificationStatus.SENT,
                                               NotificationStatus.CREATED}),  # back to waiting: quiet hours began
        # The e-mail or SMS channel's receipt: accepted (delivered), refused or retried out (failed); read in the inbox first.
        NotificationStatus.SENT: frozenset({NotificationStatus.DELIVERED, NotificationStatus.FAILED, NotificationStatus.READ}),
        NotificationStatus.DELIVERED: frozenset({NotificationStatus.READ}),
        NotificationStatus.READ: frozenset(),
        NotificationStatus.SUPPRESSED: frozenset(),
        NotificationStatus.FAILED: frozenset(),
    })

JOB = Lifecycle[JobStatus](
    transitions={JobStatus.ACCEPTED: frozenset({JobStatus.EXPANDED}), JobStatus.EXPANDED: frozenset()})

# The outcomes an agency hears about (its topic, its callback) and a job counts.
REPORTED = (NotificationStatus.DELIVERED, NotificationStatus.FAILED, NotificationStatus.SUPPRESSED, NotificationStatus.READ)

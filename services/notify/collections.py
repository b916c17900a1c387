"""notify's collections (database `harbour_notify`) and their indexes.

Modelled on GOV.UK Notify's nouns: templates (versioned), notifications (one
per recipient, with a status life cycle), jobs (batches). Personalisation and
rendered messages are personal data: stored encrypted (libs/crypto), never in
the clear.
"""

from libs.store import index

from .statuses import NotificationStatus

TEMPLATES = "templates"          # one document per (template, version): immutable once written
NOTIFICATIONS = "notifications"  # one per recipient; status created → sending (→ sent) → delivered/failed/suppressed → read
JOBS = "jobs"                    # batch sends and their totals
IDEMPOTENCY = "idempotency"      # (client, Idempotency-Key) -> the request's hash and what it created
INBOX = "inbox"                  # the citizen's in-app messages, exactly one per notification
PUSH_BATCHES = "push_batches"    # a delivered chunk's pushes, one document, waiting for the push adapter (libs/retry_queue.py)
PUSHES = "pushes"                # pushes the provider refused, retried one by one (libs/retry_queue.py)
PUSH_LOG = "push_log"            # what the local push adapter "sent": what a phone would receive (encrypted)
CHANNEL_MESSAGES = "channel_messages"  # e-mails and SMS waiting for their provider, sealed, with retries (messaging.py)
CALLBACKS = "callbacks"          # status callbacks waiting to be delivered to agencies, with retries (libs/retry_queue.py)
CALLBACK_URLS = "callback_urls"  # agency client id -> its registered status callback URL
PREFERENCES = "preferences"      # account id -> language, channels, opted-out agencies, quiet hours
ACCOUNTS = "accounts"            # projection of identity.events: account id -> language, state
SUBJECTS = "subjects"            # projection of identity.subject_assigned: (sub, sector) -> account
CLIENTS = "clients"              # projection of clients.events: client id -> name, kind, sector
CALLBACK_KEYS = "callback_keys"  # notify's ES256 keys signing callbacks (JWKS at /v1/notifications/jwks)

# The dispatcher's loop over the queues above (push batches, pushes, channel messages, callbacks), woken in its process
# when one is written (libs/background.wake_up); what notify's API process queues (a contact code, a read's callback)
# waits for its next pass, at most TIMED_WORK_IDLE_MAX_S.
TIMED_WORK = "notify timed work"
TIMED_WORK_IDLE_MAX_S = 1.0

INDEXES = (
    index(TEMPLATES, "template_id", "-version", unique=True),
    index(TEMPLATES, "client_id", "created_at"),
    # The dispatcher's scheduler: notifications waiting for their time (scheduled sends, quiet hours). Partial, like the
    # next: a notification enters these indexes only while it is in the status they serve, so a batch's notifications,
    # written once in their final status, maintain no index entry but `_id` and `(status, ...)` here stays small.
    # (They replaced `notifications_status_due_at`, `notifications_status_updated_at` and `notifications_job_id_status`,
    # which every notification entered: docs/operations.md, upgrading.)
    index(NOTIFICATIONS, "status", "due_at", name="notifications_created_due_at",
          partial_filter={"status": NotificationStatus.CREATED.value}),
    # ... and the sweeper: notifications left `sending` by a crashed delivery attempt.
    index(NOTIFICATIONS, "status", "updated_at", name="notifications_sending_updated_at",
          partial_filter={"status": NotificationStatus.SENDING.value}),
    index(JOBS, "status", "updated_at"),
    # The sweeper: jobs whose notifications are not all written yet (delivery writes them; a lost chunk is sent again).
    index(JOBS, "unwritten_since"),
    index(IDEMPOTENCY, "created_at", expire_after_s=24 * 3600),
    # Exactly one inbox item per notification, whatever the dispatcher's crashes and redeliveries: its `_id` derives
    # from the notification's (delivery._inbox_id), so `_id`'s uniqueness holds it; the unique index on
    # `notification_id` that did the same was one more entry per item (docs/operations.md, upgrading).
    index(INBOX, "account_id", "-delivered_at"),
    index(PUSHES, "notification_id", unique=True),
    # The push and callback senders' queues (their documents have a `state`, not a `status`).
    index(PUSHES, "state", "next_attempt_at"),
    index(PUSH_BATCHES, "state", "next_attempt_at"),
    index(CALLBACKS, "state", "next_attempt_at"),
    index(CHANNEL_MESSAGES, "state", "next_attempt_at"),
    index(SUBJECTS, "sector", "account_id"),
    index(CLIENTS, "sector"),
    index(CALLBACK_KEYS, "status"),
)

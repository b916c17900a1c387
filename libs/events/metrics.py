"""Event pipeline metrics: what ops watch for lag, failures and a stuck outbox."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "harbour_events_published_total",
    "Events the outbox relay published to Kafka.",
    ["service", "topic"],
)
EVENTS_CONSUMED = Counter(
    "harbour_events_consumed_total",
    "Events a consumer handled, by outcome: processed, duplicate (already processed) or dead_lettered.",
    ["service", "group", "topic", "outcome"],
)
EVENT_HANDLER_FAILURES = Counter(
    "harbour_event_handler_failures_total",
    "Failed attempts to handle an event (each retry counts).",
    ["service", "group", "topic"],
)
EVENTS_DEAD_LETTERED = Counter(
    "harbour_events_dead_lettered_total",
    "Messages sent to a dead-letter topic after their retries ran out or because they were unreadable.",
    ["service", "group", "topic"],
)
OUTBOX_BACKLOG = Gauge(
    "harbour_outbox_backlog",
    "Outbox events written but not yet published.",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "harbour_outbox_oldest_unsent_age_seconds",
    "Age of the oldest unpublished outbox event (0 when the outbox is empty).",
    ["service"],
)
OUTBOX_AWAITING_READ_BACK = Gauge(
    "harbour_outbox_awaiting_read_back",
    "Events the broker acknowledged that the relay has not yet read back from it (each is, verify_after_s after its send).",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "harbour_consumer_lag",
    "Messages not yet handled by a consumer group, per partition (high-water mark minus position).",
    ["service", "group", "topic", "partition"],
)
CONSUMER_LAST_PROGRESS = Gauge(
    "harbour_consumer_last_progress_timestamp_seconds",
    "When a consumer last went round its loop or handled a message (Unix time); a stuck consumer stops moving it.",
    ["service", "group"],
)
RELAY_LAST_PASS = Gauge(
    "harbour_outbox_relay_last_pass_timestamp_seconds",
    "When the outbox relay last completed a pass without error (Unix time).",
    ["service"],
)
EVENTS_REPUBLISHED = Counter(
    "harbour_events_republished_total",
    "Events the relay published again because the broker no longer had them where it had acknowledged them.",
    ["service", "topic"],
)

"""notify's metrics. Imported by the API and the dispatcher processes, so both export every family."""

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS_CREATED = Counter(
    "harbour_notify_notifications_accepted_total", "Notifications accepted from agencies, by how they came (single, batch).", ["via"])
NOTIFICATION_OUTCOMES = Counter(
    "harbour_notify_notifications_total", "Notification status changes made by the pipeline, by status and kind (agency, platform).",
    ["status", "kind"])
CHANNEL_DELIVERIES = Counter(
    "harbour_notify_channel_deliveries_total", "Messages handed to a channel, by channel (inbox, push) and outcome.", ["channel", "outcome"])
DISPATCH_LATENCY = Histogram(
    "harbour_notify_dispatch_latency_seconds", "From the time a notification was due to its delivery to the inbox.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0))
CALLBACK_ATTEMPTS = Counter(
    "harbour_notify_callback_attempts_total", "Status callbacks posted to agencies, by outcome (delivered, retry, given_up).", ["outcome"])
CALLBACK_BACKLOG = Gauge(
    "harbour_notify_callback_backlog", "Status callbacks waiting to be delivered (pending or retrying).")
SSE_CONNECTIONS = Gauge(
    "harbour_notify_sse_connections", "Open inbox event streams.")
REDISPATCHED = Counter(
    "harbour_notify_redispatched_total", "Notifications dispatched again after sitting in `sending` too long (a crashed delivery attempt).")

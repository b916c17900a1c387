"""HTTP metrics shared by every service (RED: rate, errors, duration).

Labels use the route template (`/v1/approvals/{id}`), never the raw path, so
cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The `_created` series double every counter for no use on our dashboards.
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "harbour_http_requests_total",
    "HTTP requests handled, by service, route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "harbour_http_request_duration_seconds",
    "HTTP request latency in seconds, by service, route template, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_FLIGHT = Gauge(
    "harbour_http_in_flight_requests",
    "Requests being handled now, by service (health probes and long-lived streams left out).",
    ["service"],
)
HTTP_SHED = Counter(
    "harbour_http_shed_total",
    "Requests answered 503 with Retry-After instead of being served, by service and reason: overloaded (over the "
    "in-flight limit), database or broker (unavailable, or the request's database deadline passed).",
    ["service", "reason"],
)

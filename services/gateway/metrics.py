"""Gateway metrics: per upstream and route, on top of the service kit's RED metrics."""

from prometheus_client import Counter, Gauge, Histogram

UPSTREAM_REQUESTS = Counter(
    "harbour_gateway_upstream_requests_total",
    "Requests the gateway forwarded, by upstream, route and the status it answered with.",
    ["upstream", "route", "status"],
)
UPSTREAM_LATENCY = Histogram(
    "harbour_gateway_upstream_latency_seconds",
    "Time until an upstream's response headers arrived.",
    ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REJECTED = Counter(
    "harbour_gateway_rejected_total",
    "Requests the gateway refused itself, by reason (rate_limited, unauthenticated, forbidden, too_large, circuit_open, "
    "overloaded).",
    ["reason"],
)
CIRCUIT_OPEN = Gauge(
    "harbour_gateway_circuit_open",
    "1 while the circuit breaker of an upstream is open.",
    ["upstream"],
)
UPSTREAM_UP = Gauge(
    "harbour_gateway_upstream_up",
    "1 while the upstream's /healthz answered the gateway's last probe, 0 otherwise.",
    ["upstream"],
)
UPSTREAM_IN_FLIGHT = Gauge(
    "harbour_gateway_upstream_in_flight_requests",
    "Requests the gateway is forwarding to an upstream now (long-lived streams apart).",
    ["upstream"],
)
CACHE_REQUESTS = Counter(
    "harbour_gateway_cache_requests_total",
    "Requests for cacheable public documents, by how the shared cache took them: hit (answered from memory), "
    "collapsed (waited for another request's fetch), miss (fetched; stored if allowed), refresh (the caller asked "
    "for a fresh copy: no-cache, or no-store).",
    ["result"],
)

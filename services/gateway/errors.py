"""What the gateway answers itself, for any proxied request (its OpenAPI adds them to every operation)."""

from __future__ import annotations

from libs.errors import NotReady, Refused, TooManyRequests


class RateLimited(TooManyRequests):
    """Over the per-address or per-client token bucket (Retry-After: when one request is allowed again)."""

    slug = "rate-limited"


class UpstreamUnavailable(NotReady):
    """The owning service could not be reached (refused, or not accepted within the connect timeout), or its
    circuit is open (`upstream` names it). Nothing reached the service: safe to retry."""


class UpstreamOverloaded(NotReady):
    """The owning service already has as many requests in flight from this gateway as it admits (`upstream` names it)."""

    slug, title = "upstream-overloaded", "Upstream overloaded"
    retry_after = 1


class GatewayTimeout(Refused):
    """The owning service did not answer in time."""

    status, slug, title = 504, "gateway-timeout", "Gateway timeout"


class BadGateway(Refused):
    """The owning service answered with something the gateway cannot pass on."""

    status, slug, title = 502, "bad-gateway", "Bad gateway"

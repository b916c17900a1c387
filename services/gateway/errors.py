"""What the gateway answers itself, for any proxied request (its OpenAPI adds them to every operation)."""

from __future__ import annotations

from libs.errors import NotReady, Refused, TooManyRequests


class RateLimited(TooManyRequests):
    """Over the per-address or per-client token bucket (Retry-After: when one request is allowed again)."""

    slug = "rate-limited"


class UpstreamUnavailable(NotReady):
    """The owning service could not be reached, or its circuit is open (`upstream` names it)."""


class GatewayTimeout(Refused):
    """The owning service did not answer in time."""

    status, slug, title = 504, "gateway-timeout", "Gateway timeout"


class BadGateway(Refused):
    """The owning service answered with something the gateway cannot pass on."""

    status, slug, title = 502, "bad-gateway", "Bad gateway"

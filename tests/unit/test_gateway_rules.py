"""The gateway's pure rules: routing table, token buckets, circuit breaker, the client policy."""

from __future__ import annotations

import base64

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.service.problems import Problem
from services.gateway.breaker import CircuitBreaker
from services.gateway.edge import authorize
from services.gateway.ratelimit import TokenBuckets
from services.gateway.routes import ALL, CLIENT, PUBLIC, ROUTES, allowed_methods, match


@pytest.mark.parametrize(
    ("method", "path", "upstream", "policy"),
    [
        ("GET", "/oidc/authorize", "auth", "public"),
        ("GET", "/v1/devices", "auth", "device"),
        ("POST", "/v1/devices", "auth", "public"),
        ("DELETE", "/v1/devices/dev-1", "auth", "device"),
        ("GET", "/v1/inbox/stream", "notify", "device"),
        ("POST", "/v1/notifications", "notify", "bearer"),
        ("POST", "/v1/signing/requests", "signing", "bearer"),
        ("GET", "/v1/signing/requests/r-1/result", "signing", "bearer"),
        ("POST", "/v1/signing/requests/r-1/claim", "signing", "device"),
        ("GET", "/v1/signing/crl", "signing", "public"),
        ("POST", "/v1/signing/tsa", "signing", "public"),
        ("POST", "/v1/signing/ocsp", "signing", "public"),
        ("GET", "/v1/signing/ocsp/MEMwQTA%2FMD0wOzAJBgUrDgMCGgUABBQ", "signing", "public"),
        ("POST", "/v1/signing/verify", "signing", "public"),
    ],
)
def test_routing_table(method, path, upstream, policy):
    rule = match(method, path)
    assert rule is not None and (rule.upstream, rule.policy.kind) == (upstream, policy)


def test_segment_boundaries_and_methods():
    assert match("GET", "/oidcx") is None and match("GET", "/v1/inboxes") is None
    assert match("PATCH", "/v1/devices") is None and "GET" in allowed_methods("/v1/devices")
    assert allowed_methods("/nowhere") == frozenset()


def _paths():
    """Paths made from the table's own patterns (placeholders filled, tails added or not) and arbitrary ones."""
    segment = st.text("abcxyz-_.=~%0123456789", min_size=1, max_size=8)
    filled = st.builds(
        lambda rule, names, tail: rule.pattern.replace("{tail*}", tail).format_map(_Fill(names)),
        st.sampled_from(ROUTES), st.lists(segment, min_size=3, max_size=3),
        st.sampled_from(["", "/", "/x", "/x/y", "x", "s"]))
    return st.one_of(filled, filled, st.text("/abcdefgilnoprstuvwxy-.1", max_size=40))


class _Fill(dict):
    def __init__(self, names):
        super().__init__()
        self.names = iter(names * 3)

    def __missing__(self, key):
        return next(self.names)


@settings(max_examples=600, deadline=None)
@given(method=st.sampled_from(sorted(ALL | {"TRACE", "get"})), path=_paths())
def test_the_routing_table_answers_its_first_matching_row(method, path):
    """`match` reads the table as one expression per method (routes.py): it must answer what reading it row by
    row answers, the first rule whose methods and pattern fit."""
    first = next((rule for rule in ROUTES if rule.matches(method, path)), None)
    assert match(method, path) is first


def test_token_bucket_allows_the_burst_then_the_rate():
    buckets = TokenBuckets(rate_per_s=2, burst=3)
    verdicts = [buckets.take("a", now=100.0) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].retry_after_s == 1 and verdicts[-1].remaining == 0
    assert buckets.take("a", now=100.5).allowed  # half a second at 2/s refills one token
    assert buckets.take("b", now=100.5).allowed  # buckets are per key


def test_token_bucket_table_is_bounded():
    buckets = TokenBuckets(rate_per_s=1, burst=1, max_keys=10)
    for i in range(10):
        buckets.take(f"k{i}", now=0.0)
    buckets.take("late", now=5.0)  # all ten refilled long ago: forgotten
    assert len(buckets._buckets) == 1


def test_breaker_opens_after_failures_and_closes_after_a_good_trial(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("services.gateway.breaker.time.monotonic", lambda: clock[0])
    breaker = CircuitBreaker(failure_threshold=3, open_s=5)
    for _ in range(3):
        assert breaker.allow()
        breaker.failed()
    assert breaker.state == "open" and not breaker.allow()
    clock[0] = 6.0
    assert breaker.state == "half_open" and breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow()


async def test_client_policy_needs_basic_credentials():
    basic = "Basic " + base64.b64encode(b"kiosk-1:secret").decode()
    caller = await authorize(make_mocked_request("GET", "/", headers={"Authorization": basic}), CLIENT, None, "http://issuer")
    assert caller.key == "client:kiosk-1"
    with pytest.raises(Problem) as refused:
        await authorize(make_mocked_request("GET", "/"), CLIENT, None, "http://issuer")
    assert refused.value.status == 401 and refused.value.headers["WWW-Authenticate"].startswith("Basic")
    assert (await authorize(make_mocked_request("GET", "/"), PUBLIC, None, "http://issuer")).key is None


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    from services.gateway.clientaddr import client_address, parse_networks

    ingress = parse_networks(["10.0.0.0/8"])
    assert client_address("10.1.2.3", "203.0.113.9", ingress) == "203.0.113.9"
    # A client's own header is ignored when the peer is not a proxy we trust...
    assert client_address("198.51.100.7", "203.0.113.9", ingress) == "198.51.100.7"
    # ...and a forged left-most entry cannot pick the bucket: read from the right, past trusted hops.
    assert client_address("10.1.2.3", "1.1.1.1, 203.0.113.9, 10.9.9.9", ingress) == "203.0.113.9"
    assert client_address("10.1.2.3", None, ingress) == "10.1.2.3"
    assert client_address("10.1.2.3", "203.0.113.9", ()) == "10.1.2.3"


def test_the_gateways_own_answers_are_declared_refusals():
    from services.gateway.errors import BadGateway, GatewayTimeout, RateLimited, UpstreamUnavailable

    limited = RateLimited("too many requests from this address; retry in 3 s", retry_after=3)
    assert (limited.status, limited.slug, limited.title, limited.headers) == (429, "rate-limited", "Too many requests", {"Retry-After": "3"})
    unavailable = UpstreamUnavailable("the auth service is unavailable", upstream="auth", retry_after=5)
    assert (unavailable.status, unavailable.slug, unavailable.headers["Retry-After"]) == (503, "service-unavailable", "5")
    assert unavailable.extensions == {"upstream": "auth"}
    assert (GatewayTimeout.status, GatewayTimeout.slug, BadGateway.status, BadGateway.slug) == (504, "gateway-timeout", 502, "bad-gateway")

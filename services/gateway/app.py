"""create_app(settings) -> the gateway: the platform's one front door.

Per request, in order: CORS preflight, the routing table (404/405), rate
limits per source address, edge authentication by the route's policy, rate
limits per client (a verified token's client or device; an unverified Basic
user name only together with the caller's address), then the streaming
pass-through to the owning service (within its limit of requests in flight) —
or, for the public documents the table marks cacheable, the shared cache
(cache.py) when it holds a fresh copy.

The gateway's readiness is its own (its revocation list): each upstream's
health is probed in the background and reported in `/readyz` and
`harbour_gateway_upstream_up` (upstream_health.py), and a route whose
service is down answers 503 at once.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from libs.revocation import install_revocations
from libs.service import create_service_app
from libs.service.health import add_readiness_report
from libs.service.overload import WAIT, mark_long_lived
from libs.service.middleware import ROUTE_LABEL
from libs.service.tracing import client_session
from libs.errors import NotFound, Refused
from libs.tokens import JWKSCache

from . import cache, cors
from .breaker import CircuitBreaker
from .clientaddr import client_address, parse_networks
from .edge import Caller, authorize
from .errors import RateLimited
from .metrics import CACHE_REQUESTS, REJECTED
from .openapi import install_openapi
from .proxy import Upstream, forward
from .ratelimit import TokenBuckets, Verdict
from .routes import ROUTES, Rule, allowed_methods, match
from .settings import GatewaySettings
from .upstream_client import UpstreamClient
from .upstream_health import UpstreamHealth

UPSTREAMS = web.AppKey("upstreams", dict)
JWKS = web.AppKey("jwks", JWKSCache)
PER_IP = web.AppKey("per_ip", TokenBuckets)
PER_CLIENT = web.AppKey("per_client", TokenBuckets)
GATEWAY_SETTINGS = web.AppKey("gateway_settings", GatewaySettings)
RATE = web.RequestKey("rate", Verdict)
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
SHARED_CACHE = web.AppKey("shared_cache", cache.SharedCache)
_CACHE_RESULTS = {result: CACHE_REQUESTS.labels(result) for result in ("hit", "collapsed", "miss", "refresh")}


def _upstreams(settings: GatewaySettings):
    async def lifecycle(app: web.Application):
        upstreams = {}
        for name, base in settings.upstreams.items():
            # One pooled session per upstream; bytes pass through as sent (no auto-decompression), and only the
            # client's headers go out (no User-Agent, Accept or Accept-Encoding of aiohttp's own). No cap on the
            # pool: the in-flight limit bounds ordinary requests, and long-lived streams must not wait for a place.
            # Not a traced session: proxy.py makes each call's client span itself.
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.upstream_connect_timeout_s,
                                              sock_read=settings.upstream_timeout_s),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            breaker = CircuitBreaker(failure_threshold=settings.breaker_failures, open_s=settings.breaker_open_s)
            client = UpstreamClient(base, connect_timeout_s=settings.upstream_connect_timeout_s,
                                    read_timeout_s=settings.upstream_timeout_s)
            upstreams[name] = Upstream(name, base, session, breaker, max_in_flight=settings.upstream_max_in_flight,
                                       client=client)
        app[UPSTREAMS] = upstreams
        # auth's keys over a traced session of their own (a fetch in a request is a client span of it).
        jwks_session = client_session(timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s))
        app[JWKS] = JWKSCache(settings.jwks_url, jwks_session, verified_cache_size=settings.token_cache_size)
        health = UpstreamHealth(upstreams, probe_s=settings.upstream_probe_s,
                                timeout_s=settings.upstream_connect_timeout_s + 1.0)
        add_readiness_report(app, "upstreams", health.report)
        probing = asyncio.create_task(health.run(), name="upstream-health")
        yield
        probing.cancel()
        await asyncio.gather(probing, return_exceptions=True)
        for upstream in upstreams.values():
            await upstream.client.close()
            await upstream.session.close()
        await jwks_session.close()

    return lifecycle


def _rate_limited(verdict: Verdict, scope: str) -> RateLimited:
    REJECTED.labels("rate_limited").inc()
    return RateLimited(f"too many requests from this {scope}; retry in {verdict.retry_after_s} s", retry_after=verdict.retry_after_s)


def client_bucket(caller: Caller, address: str) -> str:
    """The per-client bucket. A Basic user name is only claimed at the edge (the owning service checks the
    secret), so it is paired with the caller's address: requests naming client X with a wrong secret drain
    their sender's bucket, never X's, and invented names cannot escape the per-address limit either."""
    return caller.key if caller.verified else f"{caller.key}@{address}"


async def handle(request: web.Request) -> web.StreamResponse:
    settings = request.app[GATEWAY_SETTINGS]
    path = request.path
    if cors.is_preflight(request):
        return cors.preflight(request, settings.cors_origins, allowed_methods(path))
    rule = match(request.method, path)
    if rule is None:
        methods = allowed_methods(path)
        if methods:
            raise web.HTTPMethodNotAllowed(request.method, sorted(methods))
        raise NotFound("no public API at this path")
    request[ROUTE_LABEL] = rule.pattern
    address = client_address(request.remote, request.headers.get("X-Forwarded-For"), request.app[TRUSTED_PROXIES])
    verdict = request.app[PER_IP].take(f"ip:{address}")
    request[RATE] = verdict
    if not verdict.allowed:
        raise _rate_limited(verdict, "address")
    try:
        caller = await authorize(request, rule.policy, request.app[JWKS], settings.issuer)
    except Refused as refusal:
        # Counted, not handled: the problem middleware renders it.
        REJECTED.labels("unauthenticated" if refusal.status == 401 else "forbidden").inc()
        raise
    if caller.key:
        verdict = request.app[PER_CLIENT].take(client_bucket(caller, address))
        request[RATE] = verdict
        if not verdict.allowed:
            raise _rate_limited(verdict, "client")
    upstream = request.app[UPSTREAMS][rule.upstream]
    if rule.cacheable and request.app[SHARED_CACHE].max_entries > 0 and cache.request_may_use_cache(
            request.method, request.query_string, request.headers):
        return await _through_cache(request, request.app[SHARED_CACHE], upstream, rule)
    long_lived = rule.long_lived or (rule.long_poll and WAIT in request.query)
    return await forward(request, upstream, rule.pattern, rule.max_body_bytes, long_lived=long_lived)


async def _through_cache(request: web.Request, shared: cache.SharedCache, upstream: Upstream,
                         rule: Rule) -> web.StreamResponse:
    """A fresh stored copy, or another request's fetch of it awaited, or the upstream's answer (stored if allowed)."""
    key = (request.headers.get("Host", ""), request.raw_path)
    wanted = cache.request_wants(request.headers)
    if not wanted.refetch:
        entry = shared.fresh(key, wanted)
        result = "hit"
        if entry is None and (pending := shared.in_flight(key)) is not None:
            entry = await asyncio.shield(pending)  # None: that answer could not be stored; fetch our own below
            result = "collapsed"
        if entry is not None:
            _CACHE_RESULTS[result].inc()
            headers = CIMultiDict(entry.headers)
            headers["Age"] = str(entry.age_s(shared.clock()))
            return web.Response(status=entry.status, reason=entry.reason, headers=headers, body=entry.body)
    _CACHE_RESULTS["refresh" if wanted.refetch else "miss"].inc()
    if not wanted.store:
        return await forward(request, upstream, rule.pattern, rule.max_body_bytes)
    fetching = shared.begin(key)
    entry = None
    try:
        response = await forward(request, upstream, rule.pattern, rule.max_body_bytes)
        if type(response) is web.Response and isinstance(response.body, bytes):  # read whole (small, known length)
            entry = shared.store(key, response.status, response.reason, response.headers.items(), response.body)
        return response
    finally:
        shared.end(key, fetching, entry)


async def _edge_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, streamed ones too: the caller's rate-limit state and CORS."""
    verdict = request.get(RATE)
    if verdict is not None:
        response.headers["RateLimit-Limit"] = str(verdict.limit)
        response.headers["RateLimit-Remaining"] = str(verdict.remaining)
        response.headers["RateLimit-Reset"] = str(verdict.reset_s)
    cors.decorate(request, response, request.app[GATEWAY_SETTINGS].cors_origins)


def create_app(settings: GatewaySettings | None = None) -> web.Application:
    settings = settings or GatewaySettings.from_env()
    app = create_service_app(settings.service)
    app[GATEWAY_SETTINGS] = settings
    app[PER_IP] = TokenBuckets(settings.rate_per_ip, settings.burst_per_ip)
    app[PER_CLIENT] = TokenBuckets(settings.rate_per_client, settings.burst_per_client)
    app[TRUSTED_PROXIES] = parse_networks(settings.trusted_proxies)
    app[SHARED_CACHE] = cache.SharedCache(settings.cache_entries)
    app.cleanup_ctx.append(_upstreams(settings))
    for long_lived in (r.pattern for r in ROUTES if r.long_lived):
        mark_long_lived(app, long_lived)  # should HARBOUR_GATEWAY_MAX_IN_FLIGHT be set: streams are not counted
    install_revocations(app)  # the edge refuses revoked tokens, devices and accounts too
    app.on_response_prepare.append(_edge_headers)
    # Before the catch-all: aiohttp matches routes in the order they were added.
    install_openapi(app, settings.upstreams, server_url=settings.issuer)
    app.router.add_route("*", "/{path:.*}", handle)
    return app

"""CORS for browser relying parties (Fetch standard): only origins ops listed, no credentials (tokens, not cookies)."""

from __future__ import annotations

from aiohttp import web

ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id, Idempotency-Key, DPoP"
EXPOSED_HEADERS = ("X-Request-Id, Retry-After, WWW-Authenticate, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Location, "
                   "Idempotent-Replayed, DPoP-Nonce")


def is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Origin" in request.headers and "Access-Control-Request-Method" in request.headers


def preflight(request: web.Request, origins: frozenset[str], methods: frozenset[str]) -> web.Response:
    origin = request.headers["Origin"]
    wanted = request.headers["Access-Control-Request-Method"]
    if origin not in origins or wanted not in methods:
        return web.Response(status=204, headers={"Vary": "Origin"})  # no CORS headers: the browser refuses
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(sorted(methods)),
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )


def decorate(request: web.Request, response: web.StreamResponse, origins: frozenset[str]) -> None:
    origin = request.headers.get("Origin")
    if origin and origin in origins and "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers.add("Vary", "Origin")

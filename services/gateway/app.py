"""create_app(settings) -> the gateway's aiohttp application."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from libs.service import add_readiness_check, create_service_app

from .proxy import forward
from .routes import ROUTES
from .settings import GatewaySettings

UPSTREAM_SESSIONS = web.AppKey("upstream_sessions", dict)


def _upstream_sessions(settings: GatewaySettings):
    async def lifecycle(app: web.Application):
        # One pooled session per upstream; bytes pass through as sent (no auto-decompression).
        sessions = {
            name: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=2, sock_read=settings.upstream_timeout_s),
                auto_decompress=False,
            )
            for name in settings.upstreams
        }
        app[UPSTREAM_SESSIONS] = sessions
        for name, base in settings.upstreams.items():
            add_readiness_check(app, name, _healthz_probe(sessions[name], base))
        yield
        for session in sessions.values():
            await session.close()

    return lifecycle


def _healthz_probe(session: aiohttp.ClientSession, base_url: str):
    async def probe() -> None:
        async with session.get(base_url + "/healthz") as response:
            response.raise_for_status()

    return probe


def _proxy_handler(upstream: str, base_url: str):
    async def handler(request: web.Request) -> web.StreamResponse:
        return await forward(request, request.app[UPSTREAM_SESSIONS][upstream], base_url, upstream)

    return handler


def create_app(settings: GatewaySettings | None = None) -> web.Application:
    settings = settings or GatewaySettings.from_env()
    app = create_service_app(settings.service)
    app.cleanup_ctx.append(_upstream_sessions(settings))
    for route in ROUTES:
        handler = _proxy_handler(route.upstream, settings.upstreams[route.upstream])
        # The exact prefix and everything below it, on a segment boundary.
        app.router.add_route("*", route.prefix, handler)
        app.router.add_route("*", route.prefix + "/{tail:.*}", handler)
    return app

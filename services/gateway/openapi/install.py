"""GET /openapi.json and GET /docs on the gateway, and the background fetching behind them."""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
from aiohttp import web

from libs.background import stop_task
from .documents import FETCH_TIMEOUT_S, OPENAPI_DOCUMENTS, OpenAPIDocuments
from .merging import RouteOf, gateway_route_of
from .page import render_docs


async def _openapi_json(request: web.Request) -> web.Response:
    documents = request.app[OPENAPI_DOCUMENTS]
    documents.refresh_soon()
    return web.json_response(documents.merged(), headers={"Cache-Control": "no-cache"})


async def _docs(request: web.Request) -> web.Response:
    documents = request.app[OPENAPI_DOCUMENTS]
    documents.refresh_soon()
    nonce = secrets.token_urlsafe(16)
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'none'; script-src 'none'; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
    return web.Response(
        text=render_docs(documents.merged(), missing=documents.missing, nonce=nonce),
        content_type="text/html",
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def install_openapi(app: web.Application, upstreams: dict[str, str], *, server_url: str, route_of: RouteOf | None = None) -> None:
    """Serve GET /openapi.json and GET /docs; fetch the services' documents in the background.

    `upstreams`: service name → base URL; `server_url`: the public base URL (the issuer). `route_of(method, path)`: the service the gateway routes that
    request to, or None; by default the gateway's routing table, so only what it really routes is documented.
    Call it before the gateway's catch-all route is added: aiohttp resolves routes in the order they were added.
    """
    for resource in app.router.resources():
        pattern = resource.get_info().get("pattern")
        if pattern is not None and pattern.match("/openapi.json"):
            raise RuntimeError("install_openapi must be called before the catch-all route is added, or it is never reached")
    documents = OpenAPIDocuments(
        {name: url.rstrip("/") for name, url in upstreams.items()}, route_of or gateway_route_of, server_url.rstrip("/")
    )
    app[OPENAPI_DOCUMENTS] = documents

    async def lifecycle(app: web.Application):
        documents.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S))
        task = asyncio.create_task(documents.keep_fetching())
        yield
        await stop_task(task)
        await documents.stop()
        await documents.session.close()
        documents.session = None

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/openapi.json", _openapi_json)
    app.router.add_get("/docs", _docs)

"""The website: thin aiohttp handlers over the login, the platform APIs and the application.

Journey: / → /login (Harbour ID's QR page) → /callback → /apply → "Fill in with
Harbour ID" (/apply/prefill, approved on the phone) → /apply → /review →
"Sign with Harbour ID" (/sign, approved on the phone) → /done (signed PDF,
confirmation notification in the citizen's inbox).

The handlers, one module per stage: login_handlers.py, application_handlers.py,
signing_handlers.py; what they share is pages.py.
"""

from __future__ import annotations

import httpx2
from aiohttp import web

from . import application_handlers, login_handlers, signing_handlers
from .config import SiteConfig
from .pages import HERE, NEW_SESSION, SITE, Site
from .sessions import COOKIE


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    issuer = request.app[SITE].config.issuer
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        f"form-action 'self' {issuer}; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    if NEW_SESSION in request:
        response.set_cookie(COOKIE, request[NEW_SESSION], httponly=True, samesite="Lax", path="/")
    return response


def create_site(config: SiteConfig) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)

    async def resources(app: web.Application):
        async with httpx2.AsyncClient(timeout=15) as http:
            app[SITE] = Site(config, http)
            yield

    app.cleanup_ctx.append(resources)
    for handlers in (login_handlers, application_handlers, signing_handlers):
        app.add_routes(handlers.routes)
    app.router.add_static("/static", HERE / "static")
    return app

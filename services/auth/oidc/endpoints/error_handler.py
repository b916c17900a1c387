"""The one OAuth error handler of the OpenID Connect endpoints under /oidc (node-oidc-provider's error_handler).

Whatever an endpoint or the domain under it raises as an `OAuthError` is
answered here, as the endpoint's standard says:

- the authorization endpoint sends the error back to the client once the
  client and its redirect URI are verified (`back_to`: a redirect or an
  auto-posting form, with `state` and `iss`, RFC 6749 §4.1.2.1 and RFC 9207)
  and shows an error page before that;
- logout, also a browser's page, shows an error page;
- every other endpoint answers RFC 6749 §5.2 JSON with the error's status and
  headers (`WWW-Authenticate`), never cached.

Everything else — auth's refusals, aiohttp's own 404/405/413, and an OAuth
error met outside /oidc (a programming error: a 500) — goes on to the service
kit's problem middleware, as everywhere.
"""

from __future__ import annotations

from aiohttp import web

from ...callers import AUTH
from ..errors import OAuthError
from .answers import NO_STORE, error_page, respond_to_client

OIDC_PREFIX = "/oidc/"
AUTHORIZATION_ENDPOINT = "/oidc/authorize"
# Where a browser stands: an error it cannot be sent back with is a page, never JSON.
BROWSER_ENDPOINTS = frozenset({AUTHORIZATION_ENDPOINT, "/oidc/logout"})


@web.middleware
async def oauth_error_handler(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except OAuthError as error:
        if not (_endpoint(request) or "").startswith(OIDC_PREFIX):
            raise
        return render(request, error)


def render(request: web.Request, error: OAuthError) -> web.StreamResponse:
    endpoint = _endpoint(request)
    if endpoint == AUTHORIZATION_ENDPOINT and error.back_to is not None:
        issuer = request.config_dict[AUTH].settings.issuer
        return respond_to_client(error.back_to, {"error": error.error, "error_description": error.description,
                                                 "state": error.back_to.state, "iss": issuer})
    if endpoint in BROWSER_ENDPOINTS:
        return error_page(request, error)
    return web.json_response(error.body(), status=error.status, headers={**error.headers, **NO_STORE})


def _endpoint(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None

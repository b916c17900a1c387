"""The OpenID Connect provider's HTTP side: the routes under /oidc, with one OAuth error handler.

One module per group of endpoints — authorize.py (the authorization
endpoint, its browser's login, pushed requests), token.py (the token
endpoint, CIBA), presented_tokens.py (userinfo, introspection, revocation),
logout.py, metadata.py (discovery, keys) — each declared once with
libs/service/endpoints (route, answers, OpenAPI operation). Handlers parse
and answer; the domain (the modules one level up) decides; any OAuthError it
raises is rendered by error_handler.py alone. Discovery and the app's login
links (links.py, a device API with problem+json refusals) are served by the
main application.
"""

from __future__ import annotations

from aiohttp import web

from libs.service.openapi import Operation

from . import app_links, authorize, links, logout, metadata, presented_tokens, token
from .error_handler import oauth_error_handler

_GROUPS = (metadata.endpoints, authorize.endpoints, token.endpoints, presented_tokens.endpoints, logout.endpoints)

# The OpenAPI operations of the OpenID Connect provider and the login links, for auth's document.
OPERATIONS: tuple[Operation, ...] = (
    *links.endpoints.operations, *metadata.well_known.operations, *app_links.endpoints.operations, *(op for group in _GROUPS for op in group.operations)
)


def install_oidc(app: web.Application) -> None:
    """auth's application: the discovery document, the app's login links, and the routes under /oidc with the OAuth
    error handler, innermost of the middlewares.

    Routes of auth's own application rather than a sub-application under /oidc: a sub-application cost every token
    request a second router resolution and two more layers of middleware (~4 % of auth's CPU per token,
    docs/operations.md). The error handler renders only the /oidc routes' errors, as it did there.
    """
    app.add_routes(metadata.well_known.routes)
    app.add_routes(links.endpoints.routes)
    app.add_routes(app_links.endpoints.routes)  # /.well-known/assetlinks.json, apple-app-site-association
    for group in _GROUPS:
        app.add_routes(group.routes)
    app.middlewares.append(oauth_error_handler)

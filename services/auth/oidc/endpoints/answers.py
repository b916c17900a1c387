"""How the OpenID Connect endpoints answer a browser: pages under a strict CSP, redirects, responses to the client."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from aiohttp import web

from .. import pages
from ..authorization import redirect_url
from ..errors import OAuthError, ResponseTarget

# Tokens, codes and login state are never cached (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SESSION_COOKIE = "harbour_sid"


def page(body: str, nonce: str, *, status: int = 200, form_action: str = "'none'") -> web.Response:
    """An HTML page whose only script and style carry `nonce`; it may post forms to `form_action` alone."""
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src data:; "
        f"connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    return web.Response(
        text=body, status=status, content_type="text/html",
        headers={"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", **NO_STORE},
    )


def see_other(url: str) -> web.Response:
    """A 303 to `url`, never cached (the body aiohttp's HTTPSeeOther carries)."""
    return web.Response(status=303, text="303: See Other", headers={"Location": url, **NO_STORE})


def language(request: web.Request, params: dict[str, str] | None = None) -> str:
    """The page's language: the request's ui_locales, else the browser's Accept-Language."""
    return pages.pick_language((params or {}).get("ui_locales") or request.query.get("ui_locales"), request.headers.get("Accept-Language"))


def respond_to_client(target: ResponseTarget, params: dict[str, str | None]) -> web.Response:
    """An authorization response: a 303 redirect (query) or an auto-posting form (form_post)."""
    present = {k: v for k, v in params.items() if v is not None}
    if target.response_mode == "form_post":
        nonce = secrets.token_urlsafe(16)
        body = pages.render_form_post(redirect_uri=target.redirect_uri, params=present, csp_nonce=nonce)
        return page(body, nonce, form_action=_origin(target.redirect_uri))
    return see_other(redirect_url(target.redirect_uri, present))


def error_page(request: web.Request, error: OAuthError) -> web.Response:
    """An error that must not go back to the client (RFC 6749 §4.1.2.1), shown to the citizen instead."""
    nonce = secrets.token_urlsafe(16)
    body = pages.render_error_page(language=language(request), title=error.error, detail=error.description, csp_nonce=nonce)
    return page(body, nonce, status=400)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"

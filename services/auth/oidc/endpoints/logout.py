"""RP-Initiated Logout 1.0: end the browser session, then go back to the client or show the logged-out page."""

from __future__ import annotations

import secrets

from aiohttp import web

from libs.service.endpoints import Endpoints
from libs.service.openapi import html, redirect

from ...callers import AUTH
from .. import logout, pages
from ..authorization import single_params
from .answers import SESSION_COOKIE, language, page, see_other
from .forms import PARAM, query_params

endpoints = Endpoints(tags=("openid-connect",))


@endpoints.get(
    "/oidc/logout", summary="RP-Initiated Logout 1.0: end the browser session",
    query_params=query_params({"id_token_hint": PARAM, "client_id": PARAM, "post_logout_redirect_uri": PARAM, "state": PARAM,
                               "ui_locales": PARAM}),
    answers={200: html("the logged-out page"),
             303: redirect("to a registered post_logout_redirect_uri, with state"),
             400: html("an error page: repeated or too long parameters")},
)
async def end_session(request: web.Request) -> web.Response:
    params = single_params(request.query)  # a repeated or over-long parameter: an error page, as at the authorization endpoint
    target = await logout.end_session(request.config_dict[AUTH], params, request.cookies.get(SESSION_COOKIE))
    if target:
        response = see_other(target)
    else:
        nonce = secrets.token_urlsafe(16)
        response = page(pages.render_logged_out(language=language(request, params), csp_nonce=nonce), nonce)
    response.del_cookie(SESSION_COOKIE, path="/oidc")
    return response

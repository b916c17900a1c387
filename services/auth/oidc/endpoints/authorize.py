"""The authorization endpoint and its browser's login (RFC 6749 §4.1, OIDC Core §3.1), and pushed requests (RFC 9126)."""

from __future__ import annotations

import secrets

from aiohttp import web

from libs.service.endpoints import Endpoints
from libs.service.openapi import html, redirect

from ...callers import AUTH
from ...clients.registry import find_client
from .. import fapi, hints, login, pages, par, request_objects, silent_login
from ..authorization import parse_request, single_params
from ..errors import NoSuchLogin
from ..views import AuthorizationStatus, PushedAuthorizationResponse
from .answers import NO_STORE, SESSION_COOKIE, language, page, respond_to_client
from .forms import (
    AUTHORIZATION_PARAMS, CLIENT_AUTH_FIELDS, CLIENT_AUTHENTICATED, OAUTH_ERRORS, ClientForm, authenticated_client,
    query_params, read_form,
)

endpoints = Endpoints(tags=("openid-connect",))

AUTHORIZE_RESPONSES = {
    200: html("the login page (QR code, app link, matching code), or the auto-posting form of response_mode=form_post"),
    303: redirect("the authorization response for the client: code or error, with state and iss (RFC 9207)"),
    400: html("an error page: unknown client, unregistered redirect_uri, malformed or repeated parameters — never redirected"),
}
BROWSER_KEY = (("k", {"type": "string", "description": "the browser key only the login page knows"}, False),)
QR = (("qr", {"type": "string", "enum": ["1"], "description": "1: while pending, also this second's QR code (`qr`)"}, False),)


@endpoints.post("/oidc/authorize", summary="Authorization endpoint, parameters in a form",
                form_fields=AUTHORIZATION_PARAMS, answers={**AUTHORIZE_RESPONSES, 413: "the body is too large"})
@endpoints.get("/oidc/authorize", summary="Authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1)",
               query_params=query_params(AUTHORIZATION_PARAMS), answers=AUTHORIZE_RESPONSES)
async def authorize(request: web.Request) -> web.Response:
    """The login page, or for prompt=none the answer from the browser's session; errors: the OAuth error handler."""
    auth = request.config_dict[AUTH]
    params = single_params(request.query) if request.method == "GET" else await read_form(request)
    # A signed request object (RFC 9101): its claims are the request. A request_uri not PAR's own is refused.
    params, signed = await request_objects.resolve(auth, params)
    # Pushed (PAR): the client authenticated itself when it sent these parameters.
    pushed = "request_uri" in params
    if pushed:
        params = await par.redeem(auth, params["request_uri"], params.get("client_id"))
    client = await find_client(auth.db, params.get("client_id", ""))
    request_objects.check_plain(client, signed or pushed)  # require_signed_request_object (RFC 9101 §10.5)
    # RFC 9126 §6 / FAPI 2.0: a client that must push its requests is refused a plain one (an error page, not redirected).
    fapi.check_plain_request(client, pushed)
    authorization = parse_request(client, params)
    # login_hint / id_token_hint: the one citizen who may approve (None: whoever opens the link first).
    account = await hints.hinted_account(auth, client, authorization)
    if "none" in authorization.prompt:
        answer = await silent_login.answer(auth, request.cookies.get(SESSION_COOKIE), client, authorization,
                                           account_id=account["_id"] if account else None)
        return respond_to_client(authorization.response_target, answer)
    started = await login.start(auth, client, authorization, account, push=pushed)
    lang = language(request, params)
    nonce = secrets.token_urlsafe(16)
    body = pages.render_login_page(
        language=lang,
        client_name=client.name,
        purpose_lines=pages.describe_scopes(lang, authorization.scope.split()),
        matching_code=started.matching_code,
        sent_to_phone=started.sent_to_phone,
        app_link=login.app_link(started.tx),
        https_link=login.https_app_link(auth.settings.issuer, started.tx),
        qr_link=login.current_qr_link(auth, started.tx, started.started_at, auth.clock.now()),
        status_url=f"{auth.settings.issuer}/oidc/authorize/{started.tx}/status?k={started.browser_key}",
        expires_at=started.expires_at,
        now=auth.clock.now(),
        csp_nonce=nonce,
    )
    return page(body, nonce)


@endpoints.get("/oidc/authorize/{tx}/status", summary="The login page polls this until the citizen has decided",
               query_params=BROWSER_KEY + QR, answers={200: AuthorizationStatus}, refusals=(NoSuchLogin,),
               headers=NO_STORE, exclude_none=True)
async def authorize_status(request: web.Request) -> AuthorizationStatus:
    return await login.browser_status(request.config_dict[AUTH], request.match_info["tx"], request.query.get("k", ""),
                                      qr=request.query.get("qr") == "1")


@endpoints.get("/oidc/authorize/{tx}/complete", summary="Finish a decided login: set the session, answer the client",
               query_params=BROWSER_KEY, refusals=(NoSuchLogin,),
               answers={200: html("the auto-posting form of response_mode=form_post"),
                        303: redirect("to the client's redirect_uri with code (or error), state and iss")})
async def authorize_complete(request: web.Request) -> web.Response:
    auth = request.config_dict[AUTH]
    completed = await login.complete(auth, request.match_info["tx"], request.query.get("k", ""), request.cookies.get(SESSION_COOKIE))
    response = respond_to_client(completed.target, completed.params)
    if completed.cookie:
        response.set_cookie(SESSION_COOKIE, completed.cookie, httponly=True, samesite="Lax", path="/oidc",
                            secure=auth.settings.issuer.startswith("https://"), max_age=auth.settings.session_ttl_s)
    return response


@endpoints.post("/oidc/par", summary="Pushed authorization request (RFC 9126)", caller=authenticated_client("par"),
                form_fields={**AUTHORIZATION_PARAMS, **CLIENT_AUTH_FIELDS},
                answers={201: PushedAuthorizationResponse, **OAUTH_ERRORS}, headers=NO_STORE, **CLIENT_AUTHENTICATED)
async def pushed_authorization_request(request: web.Request, caller: ClientForm) -> tuple[int, PushedAuthorizationResponse]:
    return 201, await par.push(request.config_dict[AUTH], caller.client, caller.form, request.headers.getall("DPoP", []))

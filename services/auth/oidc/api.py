"""HTTP handlers of the OpenID Connect provider: parse, call the standard's module, answer as the standard says."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from libs.callers import bearer_token, challenge
from libs.service import parse_body

from ..approvals import queue
from ..callers import AUTH, current_device
from ..clients.registry import Client, find_client
from ..errors import Refused
from . import ciba, discovery, grants, login, logout, pages, par, resource
from .authorization import parse_request, redirect_url, single_params
from .client_auth import authenticate_client
from .errors import OAuthError, RedirectableError, UnredirectableError
from .metrics import TOKENS_ISSUED

routes = web.RouteTableDef()


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    link: str = Field(min_length=10, max_length=500)


SESSION_COOKIE = "harbour_sid"
CIBA_GRANT = discovery.CIBA_GRANT
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _html(request: web.Request, body: str, nonce: str, *, status: int = 200, form_action: str = "'none'") -> web.Response:
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src data:; "
        f"connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    return web.Response(
        text=body, status=status, content_type="text/html",
        headers={"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", **NO_STORE},
    )


def _language(request: web.Request, params: dict[str, str] | None = None) -> str:
    return pages.pick_language((params or {}).get("ui_locales") or request.query.get("ui_locales"), request.headers.get("Accept-Language"))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _respond_to_client(request: web.Request, redirect_uri: str, response_mode: str, params: dict[str, str]) -> web.Response:
    """Deliver an authorization response: a 303 redirect (query) or an auto-posting form (form_post)."""
    params = {k: v for k, v in params.items() if v is not None}
    if response_mode == "form_post":
        nonce = secrets.token_urlsafe(16)
        body = pages.render_form_post(redirect_uri=redirect_uri, params=params, csp_nonce=nonce)
        return _html(request, body, nonce, form_action=_origin(redirect_uri))
    raise web.HTTPSeeOther(redirect_url(redirect_uri, params), headers=NO_STORE)


def _oauth_error(exc: OAuthError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers={**exc.headers, **NO_STORE})


async def _form(request: web.Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (RFC 6749 §3.2, OIDC Core §3.1.2.1), each parameter once.

    Raises UnredirectableError (an OAuthError): the OAuth endpoints answer it as JSON, the authorization
    endpoint as an error page. A body above the size limit stays a 413.
    """
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnredirectableError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError):  # not UTF-8 (or the declared charset), or an unknown charset
        raise UnredirectableError("invalid_request", "the form is not readable text in its charset") from None
    return single_params(form)


@routes.get("/.well-known/openid-configuration")
async def openid_configuration(request: web.Request) -> web.Response:
    return web.json_response(discovery.provider_metadata(request.app[AUTH].settings.issuer), headers={"Cache-Control": "max-age=300"})


@routes.get("/oidc/jwks")
async def jwks(request: web.Request) -> web.Response:
    # Short cache: a rotation's next key must reach clients before it signs.
    return web.json_response(await request.app[AUTH].keys.jwks(), headers={"Cache-Control": "max-age=60"})


@routes.route("*", "/oidc/authorize")
async def authorize(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    if request.method not in ("GET", "POST"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
    language = _language(request)
    nonce = secrets.token_urlsafe(16)
    try:
        params = single_params(request.query) if request.method == "GET" else await _form(request)
        if "request_uri" in params:
            params = await par.redeem(auth.db, params["request_uri"], params.get("client_id"))
        client = await find_client(auth.db, params.get("client_id", ""))
        authorization = parse_request(client, params)
    except UnredirectableError as exc:
        body = pages.render_error_page(language=language, title=exc.error, detail=exc.description, csp_nonce=nonce)
        return _html(request, body, nonce, status=400)
    except RedirectableError as exc:
        return _respond_to_client(request, exc.redirect_uri, exc.response_mode,
                                  {"error": exc.error, "error_description": exc.description, "state": exc.state, "iss": auth.settings.issuer})
    language = _language(request, params)
    if "none" in authorization.prompt:
        try:
            session_doc = await login.session_allows(auth, request.cookies.get(SESSION_COOKIE), authorization)
        except login.SilentRefused as exc:
            return _respond_to_client(request, authorization.redirect_uri, authorization.response_mode,
                                      {"error": exc.error, "error_description": exc.description,
                                       "state": authorization.state, "iss": auth.settings.issuer})
        params = await login.issue_silently(auth, client, authorization, session_doc)
        return _respond_to_client(request, authorization.redirect_uri, authorization.response_mode, params)
    started = await login.start(auth, client, authorization)
    status_url = f"{auth.settings.issuer}/oidc/authorize/{started['tx']}/status?k={started['browser_key']}"
    body = pages.render_login_page(
        language=language,
        client_name=client.name,
        purpose_lines=pages.describe_scopes(language, authorization.scope.split()),
        matching_code=started["matching_code"],
        app_link=login.app_link(started["tx"]),
        status_url=status_url,
        expires_at=started["expires_at"],
        csp_nonce=nonce,
    )
    return _html(request, body, nonce)


@routes.get("/oidc/authorize/{tx}/status")
async def authorize_status(request: web.Request) -> web.Response:
    answer = await login.browser_status(request.app[AUTH], request.match_info["tx"], request.query.get("k", ""))
    return web.json_response(answer, headers=NO_STORE)


@routes.get("/oidc/authorize/{tx}/complete")
async def authorize_complete(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    response, cookie = await login.complete(auth, request.match_info["tx"], request.query.get("k", ""),
                                            request.cookies.get(SESSION_COOKIE))
    try:
        result = _respond_to_client(request, response["redirect_uri"], response["response_mode"], response["params"])
    except web.HTTPSeeOther as redirect:
        result = redirect
    if cookie:
        result.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Lax", path="/oidc",
                          secure=auth.settings.issuer.startswith("https://"), max_age=auth.settings.session_ttl_s)
    if isinstance(result, web.HTTPSeeOther):
        raise result
    return result


@routes.post("/oidc/par")
async def pushed_authorization_request(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    try:
        form, client = await _authenticated(request, "par")
        params = {k: v for k, v in form.items() if k not in ("client_secret", "client_assertion", "client_assertion_type", "request_uri")}
        params["client_id"] = client.client_id
        try:
            parse_request(client, params)
        except (RedirectableError, UnredirectableError) as exc:
            raise OAuthError(exc.error, exc.description) from None
        request_uri, expires_in = await par.push(auth.db, client.client_id, params)
    except OAuthError as exc:
        return _oauth_error(exc)
    return web.json_response({"request_uri": request_uri, "expires_in": expires_in}, status=201, headers=NO_STORE)


async def _authenticated(request: web.Request, endpoint: str) -> tuple[dict[str, str], Client]:
    """The form of a client-authenticated endpoint and the client; assertions may name the issuer or the endpoint."""
    auth = request.app[AUTH]
    form = await _form(request)
    issuer = auth.settings.issuer
    audiences = [issuer, f"{issuer}/oidc/token", f"{issuer}/oidc/{endpoint}"]
    client = await authenticate_client(auth.db, request.headers.get("Authorization"), form, audiences=audiences)
    return form, client


@routes.post("/oidc/token")
async def token(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    try:
        form, client = await _authenticated(request, "token")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            body = await grants.authorization_code(auth, client, form)
        elif grant_type == "refresh_token":
            body = await grants.refresh_token(auth, client, form)
        elif grant_type == "client_credentials":
            body = await grants.client_credentials(auth, client, form)
        elif grant_type == CIBA_GRANT:
            body = await ciba.poll(auth, client, form)
        else:
            raise OAuthError("unsupported_grant_type", "grant_type is missing or not supported")
    except OAuthError as exc:
        return _oauth_error(exc)
    TOKENS_ISSUED.labels(grant_type).inc()
    return web.json_response(body, headers=NO_STORE)


@routes.post("/oidc/bc-authorize")
async def backchannel_authentication(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    try:
        form, client = await _authenticated(request, "bc-authorize")
        body = await ciba.backchannel_authorize(auth, client, form)
    except OAuthError as exc:
        return _oauth_error(exc)
    except Refused as exc:
        return _oauth_error(OAuthError("access_denied", str(exc), 403))
    auth.relay.notify()
    return web.json_response(body, headers=NO_STORE)


def _bearer(request: web.Request) -> str:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise OAuthError("invalid_token", "a bearer access token is required", 401)
    return token


@routes.route("*", "/oidc/userinfo")
async def userinfo(request: web.Request) -> web.Response:
    if request.method not in ("GET", "POST"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
    try:
        claims = await resource.userinfo(request.app[AUTH], _bearer(request))
    except OAuthError as exc:
        # userinfo's challenge has always named no realm (OIDC Core §5.3.3 shows none).
        www_authenticate = challenge("Bearer", error=exc.error, description=exc.description, realm=None)
        return web.json_response(exc.body(), status=exc.status, headers={"WWW-Authenticate": www_authenticate, **NO_STORE})
    return web.json_response(claims, headers=NO_STORE)


@routes.post("/oidc/introspect")
async def introspect(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    try:
        form, client = await _authenticated(request, "introspect")
    except OAuthError as exc:
        return _oauth_error(exc)
    return web.json_response(await resource.introspect(auth, client, form.get("token")), headers=NO_STORE)


@routes.post("/oidc/revoke")
async def revoke(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    try:
        form, client = await _authenticated(request, "revoke")
    except OAuthError as exc:
        return _oauth_error(exc)
    await resource.revoke(auth, client, form.get("token"))
    return web.Response(status=200, headers=NO_STORE)


@routes.get("/oidc/logout")
async def end_session(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    try:
        params = single_params(request.query)
    except UnredirectableError as exc:
        # A repeated or over-long parameter: an error page, as at the authorization endpoint.
        nonce = secrets.token_urlsafe(16)
        body = pages.render_error_page(language=_language(request), title=exc.error, detail=exc.description, csp_nonce=nonce)
        return _html(request, body, nonce, status=400)
    target = await logout.end_session(auth, params, request.cookies.get(SESSION_COOKIE))
    if target:
        response: web.StreamResponse = web.HTTPSeeOther(target, headers=NO_STORE)
    else:
        nonce = secrets.token_urlsafe(16)
        response = _html(request, pages.render_logged_out(language=_language(request, params), csp_nonce=nonce), nonce)
    response.del_cookie(SESSION_COOKIE, path="/oidc")
    if isinstance(response, web.HTTPSeeOther):
        raise response
    return response


@routes.post("/v1/approvals/links")
async def open_link(request: web.Request) -> web.Response:
    """The app opened a harbourid:// link (QR or app link): queue its prompt for this citizen."""
    device = await current_device(request)
    auth = request.app[AUTH]
    body = await parse_body(request, LinkRequest)
    approval_id = await login.claim(auth, device.account_id, body.link)
    prompt = await queue.get_prompt(auth, device.account_id, approval_id)
    return web.json_response(prompt, status=201)

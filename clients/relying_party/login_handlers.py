"""Logging in and out with Harbour ID: the home page, the login, its callback, the logout."""

from __future__ import annotations

from aiohttp import web

from .messages import MESSAGES
from .oidc import LoginFailed
from .pages import NEW_SESSION, SITE, checked_form, error_page, page, session_of
from .sessions import COOKIE

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    session = session_of(request)
    if "user" in session.data:
        raise web.HTTPSeeOther("/apply")
    return page(request, "home.html")


@routes.get("/login")
async def login(request: web.Request) -> web.Response:
    session = session_of(request)
    url, pending = await request.app[SITE].login.start(session.language)
    session.data["pending_login"] = pending
    response = web.HTTPSeeOther(url)
    if NEW_SESSION in request:
        response.set_cookie(COOKIE, request[NEW_SESSION], httponly=True, samesite="Lax", path="/")
    raise response


@routes.get("/callback")
async def callback(request: web.Request) -> web.Response:
    session = session_of(request)
    pending = session.data.pop("pending_login", None)
    if pending is None:
        return error_page(request, "This login was not started here.")
    site = request.app[SITE]
    try:
        done = await site.login.finish(site.config.redirect_uri + "?" + request.query_string, dict(request.query), pending)
    except LoginFailed as failed:
        message = MESSAGES[session.language]["denied"] if str(failed) == "access_denied" else str(failed)
        return error_page(request, message)
    session.data["user"] = {"sub": done.sub, "access_token": done.access_token, "id_token": done.id_token, "acr": done.acr}
    raise web.HTTPSeeOther("/apply")


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    session = session_of(request)
    await checked_form(request, session)
    user = session.data.get("user")
    site = request.app[SITE]
    site.sessions.end(session.id)
    site.locks.pop(session.id, None)
    response = web.HTTPSeeOther(await site.login.logout_url(user["id_token"]) if user else "/")
    response.del_cookie(COOKIE, path="/")
    raise response

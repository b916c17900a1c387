"""The website: thin aiohttp handlers over the login, the platform APIs and the application.

Journey: / → /login (Harbour ID's QR page) → /callback → /apply → "Fill in with
Harbour ID" (/apply/prefill, approved on the phone) → /apply → /review →
"Sign with Harbour ID" (/sign, approved on the phone) → /done (signed PDF,
confirmation notification in the citizen's inbox).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Any

import httpx2
from aiohttp import web
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from .application import PLANS, Application, InvalidApplication
from . import confirmation
from .config import FORM_FIELDS, SiteConfig
from .messages import LANGUAGES, MESSAGES, pick_language
from .oidc import HarbourIdLogin, LoginFailed
from .platform import PlatformApi, PlatformError
from .sessions import COOKIE, Session, SessionStore

HERE = Path(__file__).parent
SITE: web.AppKey["Site"] = web.AppKey("site")
NEW_SESSION = web.RequestKey("new_session", str)
PREFILL_PURPOSE = "Open an electricity account"
log = logging.getLogger("harbour_power")


class Site:
    """Everything the handlers share: configuration, sessions, the login client and the platform APIs."""

    def __init__(self, config: SiteConfig, http: httpx2.AsyncClient) -> None:
        self.config = config
        self.sessions = SessionStore()
        self.login = HarbourIdLogin(config, http)
        self.platform = PlatformApi(config, http)
        self.pages = SandboxedEnvironment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
        self.locks: dict[str, asyncio.Lock] = {}
        self.template_id: str | None = None

    def lock(self, session: Session) -> asyncio.Lock:
        """One status check at a time per session, so a release or result is read exactly once."""
        return self.locks.setdefault(session.id, asyncio.Lock())


# -- plumbing ----------------------------------------------------------------------


def session_of(request: web.Request) -> Session:
    """The visitor's session, created on first visit; `?lang=` switches language."""
    site = request.app[SITE]
    session = site.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        session = site.sessions.create(pick_language(None, request.headers.get("Accept-Language")))
        request[NEW_SESSION] = session.id
    if request.query.get("lang") in LANGUAGES:
        session.language = request.query["lang"]
    return session


def page(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    session = session_of(request)
    lang = session.language
    html = request.app[SITE].pages.get_template(template).render(
        lang=lang, other_lang="zh-HK" if lang == "en" else "en", t=MESSAGES[lang], csrf=session.csrf,
        signed_in="user" in session.data, **values,
    )
    return web.Response(text=html, content_type="text/html", status=status)


def error_page(request: web.Request, message: str, status: int = 400) -> web.Response:
    return page(request, "error.html", status=status, message=message)


async def checked_form(request: web.Request, session: Session) -> dict[str, str]:
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    if not secrets.compare_digest(form.get("csrf", ""), session.csrf):
        raise web.HTTPForbidden(text="This form has expired; go back and try again.")
    return form


def signed_in(session: Session) -> dict:
    user = session.data.get("user")
    if user is None:
        raise web.HTTPSeeOther("/")
    return user


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


# -- pages -------------------------------------------------------------------------

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


@routes.get("/apply")
async def apply_form(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    return page(request, "apply.html", form=session.data.get("form", {}), prefilled="form" in session.data, problems={}, plans=PLANS)


@routes.post("/apply/prefill")
async def prefill(request: web.Request) -> web.Response:
    session = session_of(request)
    user = signed_in(session)
    await checked_form(request, session)
    try:
        request_id = await request.app[SITE].platform.ask_for_fields(user["access_token"], FORM_FIELDS, PREFILL_PURPOSE)
    except PlatformError as failed:
        return error_page(request, str(failed), status=502)
    session.data["prefill_request"] = request_id
    raise web.HTTPSeeOther("/apply/waiting")


@routes.get("/apply/waiting")
async def prefill_waiting(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    return page(request, "waiting.html", instruction=MESSAGES[session.language]["waiting_prefill"],
                status_url="/status/prefill", check_url="/apply/waiting")


@routes.get("/status/prefill")
async def prefill_status(request: web.Request) -> web.Response:
    session = session_of(request)
    user = signed_in(session)
    site = request.app[SITE]
    async with site.lock(session):
        request_id = session.data.get("prefill_request")
        if request_id is None:
            return web.json_response({"status": "done", "next": "/apply"})
        try:
            status = await site.platform.form_status(user["access_token"], request_id)
            if status == "approved":
                released = await site.platform.released_fields(user["access_token"], request_id, user["sub"])
                session.data["form"] = {"name": released.get("name_en", ""), "address": released.get("address", ""),
                                        "phone": released.get("phone", ""), "email": released.get("email", ""), "plan": "standard"}
                session.data.pop("prefill_request")
                return web.json_response({"status": "done", "next": "/apply"})
        except PlatformError as failed:
            return web.json_response({"status": "failed", "message": str(failed)})
    return outcome_json(session, status)


def outcome_json(session: Session, status: str) -> web.Response:
    if status == "pending":
        return web.json_response({"status": "pending"})
    words = MESSAGES[session.language]
    return web.json_response({"status": status, "message": words["denied"] if status == "denied" else words["expired"]})


@routes.post("/apply")
async def submit_application(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    form = await checked_form(request, session)
    try:
        application = Application.from_form(form)
    except InvalidApplication as invalid:
        return page(request, "apply.html", status=422, form=form, prefilled="form" in session.data,
                    problems=invalid.problems, plans=PLANS)
    session.data["application"] = application
    session.data["draft_pdf"] = application.to_pdf()
    raise web.HTTPSeeOther("/review")


@routes.get("/review")
async def review(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "application" not in session.data:
        raise web.HTTPSeeOther("/apply")
    return page(request, "review.html", application=session.data["application"])


@routes.get("/application/draft.pdf")
async def draft_pdf(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "draft_pdf" not in session.data:
        raise web.HTTPNotFound()
    return web.Response(body=session.data["draft_pdf"], content_type="application/pdf")


@routes.post("/sign")
async def sign(request: web.Request) -> web.Response:
    session = session_of(request)
    user = signed_in(session)
    await checked_form(request, session)
    application: Application | None = session.data.get("application")
    if application is None:
        raise web.HTTPSeeOther("/apply")
    try:
        request_id = await request.app[SITE].platform.ask_to_sign(
            user["access_token"], session.data["draft_pdf"], application.document_name, "Open an electricity account")
    except PlatformError as failed:
        return error_page(request, str(failed), status=502)
    session.data["sign_request"] = request_id
    raise web.HTTPSeeOther("/sign/waiting")


@routes.get("/sign/waiting")
async def sign_waiting(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "application" not in session.data:
        raise web.HTTPSeeOther("/apply")
    instruction = MESSAGES[session.language]["waiting_sign"].format(document=session.data["application"].document_name)
    return page(request, "waiting.html", instruction=instruction, status_url="/status/sign", check_url="/sign/waiting")


@routes.get("/status/sign")
async def sign_status(request: web.Request) -> web.Response:
    session = session_of(request)
    user = signed_in(session)
    site = request.app[SITE]
    async with site.lock(session):
        request_id = session.data.get("sign_request")
        if request_id is None:
            return web.json_response({"status": "done", "next": "/done" if "signed_pdf" in session.data else "/review"})
        try:
            status = await site.platform.signing_status(user["access_token"], request_id)
            if status == "signed":
                session.data["signed_pdf"] = await site.platform.signed_pdf(user["access_token"], request_id)
                session.data.pop("sign_request")
                session.data["confirmation_sent"] = await send_confirmation(site, user, session.data["application"])
                return web.json_response({"status": "done", "next": "/done"})
        except PlatformError as failed:
            return web.json_response({"status": "failed", "message": str(failed)})
    return outcome_json(session, status)


async def send_confirmation(site: Site, user: dict, application: Application) -> bool:
    """Best effort: the application stands even if the inbox cannot be reached; the page says which it was."""
    try:
        token = await site.login.client_token("notify")
        if site.template_id is None:
            site.template_id = await site.platform.ensure_template(
                token, confirmation.TEMPLATE_NAME, confirmation.PLACEHOLDERS, confirmation.CONTENT)
        await site.platform.notify(token, site.template_id, user["sub"],
                                   {"reference": application.reference, "address": application.address}, application.reference)
        return True
    except (PlatformError, LoginFailed) as failed:
        log.warning("confirmation not sent for %s: %s", application.reference, failed)
        return False


@routes.get("/done")
async def done(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "signed_pdf" not in session.data:
        raise web.HTTPSeeOther("/review")
    return page(request, "done.html", application=session.data["application"], confirmation_sent=session.data["confirmation_sent"])


@routes.get("/application/signed.pdf")
async def signed_pdf(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "signed_pdf" not in session.data:
        raise web.HTTPNotFound()
    reference = session.data["application"].reference
    return web.Response(body=session.data["signed_pdf"], content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{reference}-signed.pdf"'})


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


def create_site(config: SiteConfig) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)

    async def resources(app: web.Application):
        async with httpx2.AsyncClient(timeout=15) as http:
            app[SITE] = Site(config, http)
            yield

    app.cleanup_ctx.append(resources)
    app.add_routes(routes)
    app.router.add_static("/static", HERE / "static")
    return app

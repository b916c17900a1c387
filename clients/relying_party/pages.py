"""What every handler of the site uses: its shared state, the visitor's session, pages, checked forms, the signed-in user."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx2
from aiohttp import web
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from .config import SiteConfig
from .messages import LANGUAGES, MESSAGES, pick_language
from .oidc import HarbourIdLogin
from .platform import PlatformApi
from .sessions import COOKIE, Session, SessionStore

HERE = Path(__file__).parent
SITE: web.AppKey["Site"] = web.AppKey("site")
NEW_SESSION = web.RequestKey("new_session", str)


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


def outcome_json(session: Session, status: str) -> web.Response:
    """What a waiting page's status check answers while the request is not done: pending, or why it ended."""
    if status == "pending":
        return web.json_response({"status": "pending"})
    words = MESSAGES[session.language]
    return web.json_response({"status": status, "message": words["denied"] if status == "denied" else words["expired"]})

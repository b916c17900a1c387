"""The citizen's web app over HTTP: its static files under /app/ and its configuration (web_app.py reads them).

- `GET /app/`, `GET /app/<screen>` (a last segment without a dot: `/app/authorize`, `/app/inbox`): index.html, the
  app routes on its path; `GET /app/<file>` (`/app/sw.js`, `/app/i18n/en.json`): that file; any other: 404.
- `GET /app/config.json`: `{"issuer", "rp_id", "origin", "languages"}`, what the app needs to call WebAuthn.
- Under another host than the app's origin (127.0.0.1 in dev, where the origin is localhost): 308 to the same path
  and query there, so the login page's app link opens the app at its one origin.

Every answer carries the strict headers (a CSP without inline script or style, no framing, no referrer); files have
an ETag (a matching If-None-Match is 304) and `Cache-Control: no-cache`, the service worker `no-store`.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from libs.errors import NotFound
from libs.service.endpoints import Endpoints
from libs.service.logging import get_logger
from libs.service.openapi import Body, redirect

from ..settings import AuthSettings
from ..web_app import AppFile, WebApp, web_app

log = get_logger("harbour.auth.web_app")
endpoints = Endpoints(tags=("web-app",))
WEB_APP = web.AppKey("auth_web_app", WebApp)
PREFIX = "/app/"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "worker-src 'self'; manifest-src 'self'; media-src 'self' blob: mediastream:; font-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), publickey-credentials-get=(self), "
                          "publickey-credentials-create=(self)",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SERVICE_WORKER = "sw.js"


class NoSuchAppFile(NotFound):
    slug, title = "no-such-file", "No such file"


class WebAppConfig(BaseModel):
    issuer: str = Field(description="the issuer: the app uses it (not its own origin) for every aud and htu")
    rp_id: str = Field(description="the WebAuthn relying party id of the app's passkeys (its origin's host)")
    origin: str = Field(description="the app's one origin")
    languages: list[str] = Field(description="the app's languages")


def _file_headers(name: str, file: AppFile) -> dict[str, str]:
    cache = "no-store" if name == SERVICE_WORKER else "no-cache"
    return {**HEADERS, "ETag": file.etag, "Cache-Control": cache}


def _elsewhere(request: web.Request, app: WebApp) -> web.Response | None:
    """A 308 to the app's origin when the request reached auth under another host (the gateway says which)."""
    host = (request.headers.get("X-Forwarded-Host") or request.host or "").split(",")[0].strip().lower()
    if host == app.host:
        return None
    # The path and query as they came, percent-encoded (never decoded into a header), and only them: a request target
    # in absolute form (`GET http://elsewhere/app/`) keeps its path, never its host.
    return web.Response(status=308, headers={**HEADERS, "Location": app.origin + request.rel_url.raw_path_qs,
                                             "Cache-Control": "no-store"})


def _answer(request: web.Request, name: str, file: AppFile) -> web.Response:
    headers = _file_headers(name, file)
    if file.etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=file.body, headers={**headers, "Content-Type": file.content_type})


def _serve(request: web.Request, tail: str) -> web.Response:
    app = request.app[WEB_APP]
    moved = _elsewhere(request, app)
    if moved is not None:
        return moved
    file = app.file_for(tail)
    if file is None:
        raise NoSuchAppFile("no such file in the citizen's web app", headers=dict(HEADERS))
    return _answer(request, tail or "index.html", file)


FILE_ANSWERS = {200: Body("the file (index.html for the app's screens)", None, {"type": "string"}),
                304: "not modified (If-None-Match)",
                308: redirect("the same path and query at the app's origin (the request came under another host)"),
                404: "no such file"}


@endpoints.get("/app/config.json", summary="What the citizen's web app needs: the issuer and its WebAuthn relying party",
               answers={200: WebAppConfig, 304: "not modified (If-None-Match)",
                        308: redirect("the same path at the app's origin (the request came under another host)")})
async def config(request: web.Request) -> web.Response:
    app = request.app[WEB_APP]
    moved = _elsewhere(request, app)
    if moved is not None:
        return moved
    return _answer(request, "config.json", app.config_file)


@endpoints.get("/app", summary="The citizen's web app (its origin is /app/)",
               answers={308: redirect("/app/ at the app's origin")}, documented=False)
async def bare(request: web.Request) -> web.Response:
    app = request.app[WEB_APP]
    raw_query = request.rel_url.raw_query_string  # percent-encoded: a decoded %0d%0a would be a header injection
    query = f"?{raw_query}" if raw_query else ""
    return web.Response(status=308, headers={**HEADERS, "Location": f"{app.origin}{PREFIX}{query}", "Cache-Control": "no-store"})


@endpoints.get("/app/", summary="The citizen's web app (index.html)", answers=FILE_ANSWERS, refusals=(NoSuchAppFile,))
async def index(request: web.Request) -> web.Response:
    return _serve(request, "")


@endpoints.get("/app/{file}", summary="A file of the citizen's web app, or one of its screens (index.html)",
               answers=FILE_ANSWERS, refusals=(NoSuchAppFile,),
               description="A last segment without a dot (`/app/authorize`, the login page's app link) is one of the "
                           "app's screens: index.html, the app routes on its path. Files in folders "
                           "(`/app/i18n/en.json`) are served the same way.")
async def app_file(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["file"])


@endpoints.get("/app/{folder}/{path:.+}", summary="A file in a folder of the citizen's web app",
               answers=FILE_ANSWERS, refusals=(NoSuchAppFile,), documented=False)
async def nested_file(request: web.Request) -> web.Response:
    return _serve(request, f"{request.match_info['folder']}/{request.match_info['path']}")


def install_web_app(app: web.Application, settings: AuthSettings) -> None:
    """Read the app's files once, for its routes (endpoints/__init__.py); a missing folder: its paths answer 404, and
    one warning says so. A web app origin that is no origin, or an IP address, stops the start (SettingsError)."""
    served = web_app(settings.issuer, settings.web_app_dir, settings.web_app_origin)
    if not served.files:
        log.warning("web_app_missing", detail="no files in the web app's folder: /app/ answers 404",
                    folder=settings.web_app_dir or "clients/citizen_web")
    app[WEB_APP] = served

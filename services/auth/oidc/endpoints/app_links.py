"""https app links under the issuer: the files Android and iOS read to hand `{issuer}/app/…` to the citizen app.
Served by the main application. Such a link opened in a browser opens the citizen's web app, which auth serves under
/app/ (endpoints/web_app.py).

- `/.well-known/assetlinks.json` (Android Digital Asset Links): the app's package and the SHA-256 fingerprints of
  its signing certificates (`HARBOUR_AUTH_ANDROID_PACKAGE`, `HARBOUR_AUTH_ANDROID_CERT_SHA256`);
- `/.well-known/apple-app-site-association` (iOS universal links): the app ids (`HARBOUR_AUTH_APPLE_APP_IDS`) and
  the paths the app handles. Served as application/json at this exact path, no redirect, as Apple requires.
"""

from __future__ import annotations

import functools
import json

from aiohttp import web

from libs.service.endpoints import Endpoints
from libs.service.openapi import JSON, Body

from ...callers import AUTH

endpoints = Endpoints(tags=("app-links",))

# The paths of the issuer the app claims: the login link today (`/app/authorize`); later links go under /app/ too.
APP_PATHS = ("/app/*",)
CACHE = {"Cache-Control": "max-age=3600"}


@functools.lru_cache(maxsize=4)
def asset_links(package: str, fingerprints: tuple[str, ...]) -> bytes:
    """The Digital Asset Links statement list: empty until the app's signing certificates are configured."""
    if not fingerprints:
        return b"[]"
    statement = {"relation": ["delegate_permission/common.handle_all_urls"],
                 "target": {"namespace": "android_app", "package_name": package, "sha256_cert_fingerprints": list(fingerprints)}}
    return json.dumps([statement], separators=(",", ":")).encode()


@functools.lru_cache(maxsize=4)
def apple_app_site_association(app_ids: tuple[str, ...]) -> bytes:
    """The applinks section (iOS 13+ `components`): these app ids open the issuer's /app/ paths."""
    details = ([{"appIDs": list(app_ids), "components": [{"/": path, "comment": "Harbour ID login and approval links"}
                                                         for path in APP_PATHS]}] if app_ids else [])
    return json.dumps({"applinks": {"details": details}}, separators=(",", ":")).encode()


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=JSON, headers=CACHE)


@endpoints.get("/.well-known/assetlinks.json", summary="Android Digital Asset Links: the app that opens the issuer's app links",
               answers={200: Body("a JSON array of statements (empty until the app's certificates are configured)", JSON,
                                  {"type": "array", "items": {"type": "object"}})})
async def assetlinks(request: web.Request) -> web.Response:
    settings = request.config_dict[AUTH].settings
    return _json(asset_links(settings.android_package, settings.android_cert_sha256))


@endpoints.get("/.well-known/apple-app-site-association", summary="iOS universal links: the app that opens the issuer's app links",
               answers={200: Body("the applinks section, as application/json", JSON, {"type": "object"})})
async def apple_association(request: web.Request) -> web.Response:
    return _json(apple_app_site_association(request.config_dict[AUTH].settings.apple_app_ids))

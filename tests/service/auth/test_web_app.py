"""The citizen's web app served by auth under /app/ (HARBOUR_AUTH_WEB_APP_DIR: a folder of this test's own): index.html
for its screens, files by name with ETags, the strict headers on every answer, config.json, and the one origin (a
request under the issuer's 127.0.0.1 host is sent to localhost)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.auth.endpoints.web_app import CSP

INDEX = b'<!doctype html><html lang="en"><title>Harbour ID</title><script type="module" src="/app/js/main.js"></script>'
FILES = {"index.html": INDEX, "sw.js": b"self.addEventListener('fetch', () => {});", "app.css": b"body{margin:0}",
         "js/main.js": b"export {};", "i18n/en.json": b'{"title": "Harbour ID"}', "manifest.webmanifest": b"{}",
         ".secret": b"not served"}


OUTSIDE = b"not the app's"


def app_folder(tmp_path: Path) -> Path:
    """FILES in `tmp_path`/citizen_web, and beside that folder a file (OUTSIDE) that must never be served."""
    folder = tmp_path / "citizen_web"
    for name, body in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
    (tmp_path / "outside.txt").write_bytes(OUTSIDE)
    return folder


@pytest.fixture
def auth_variables(tmp_path):
    return {"AUTH_WEB_APP_DIR": str(app_folder(tmp_path))}


def at_origin(auth_service) -> dict[str, str]:
    """The Host of the app's origin: the issuer's port on localhost."""
    return {"Host": f"localhost:{urlsplit(auth_service.url).port}"}


def assert_strict(response) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == CSP and "'unsafe-inline'" not in CSP
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY" and headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "publickey-credentials-get=(self)" in headers["Permissions-Policy"]
    assert "camera=(self)" in headers["Permissions-Policy"] and "microphone=()" in headers["Permissions-Policy"]


async def test_the_app_and_its_screens_are_index_html_with_strict_headers(auth_service):
    client, host = auth_service.client, at_origin(auth_service)
    for path in ("/app/", "/app/authorize?tx=abc&t=1&c=x", "/app/inbox", "/app/devices/dev-1"):
        response = await client.get(path, headers=host, allow_redirects=False)
        assert response.status == 200, path
        assert await response.read() == INDEX and response.content_type == "text/html", path
        assert_strict(response)
        assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"].startswith('"')
    again = await client.get("/app/", headers={**host, "If-None-Match": response.headers["ETag"]})
    assert again.status == 304 and await again.read() == b""
    assert_strict(again)
    # HEAD, which the gateway forwards with every GET route: the same answer without its body.
    head = await client.head("/app/", headers=host, allow_redirects=False)
    assert head.status == 200 and await head.read() == b"" and head.headers["ETag"] == response.headers["ETag"]
    assert_strict(head)


async def test_files_by_name_and_nothing_else(auth_service):
    client, host = auth_service.client, at_origin(auth_service)
    expected = {"/app/sw.js": ("text/javascript", "no-store"), "/app/app.css": ("text/css", "no-cache"),
                "/app/js/main.js": ("text/javascript", "no-cache"), "/app/i18n/en.json": ("application/json", "no-cache"),
                "/app/manifest.webmanifest": ("application/manifest+json", "no-cache")}
    for path, (content_type, cache) in expected.items():
        response = await client.get(path, headers=host)
        assert response.status == 200 and response.content_type == content_type, path
        assert await response.read() == FILES[path.removeprefix("/app/")]
        assert response.headers["Cache-Control"] == cache, path
        assert_strict(response)
    for path in ("/app/missing.js", "/app/.secret", "/app/i18n/fr.json", "/app/js/.x/main.js"):
        response = await client.get(path, headers=host)
        assert response.status == 404, path
        assert response.content_type == "application/problem+json" and (await response.json())["type"].endswith("/no-such-file")
        assert_strict(response)
    escaped = await client.get("/app/js/../../outside.txt", headers=host)  # normalised to /outside.txt: not the app's
    assert escaped.status == 404 and "not the app's" not in await escaped.text()


async def test_another_host_is_sent_to_the_apps_one_origin(auth_service):
    """The issuer is http://127.0.0.1:<port>: WebAuthn refuses IP addresses, so the app lives at localhost:<port>."""
    client, origin = auth_service.client, "http://" + at_origin(auth_service)["Host"]
    for path in ("/app/authorize?tx=abc&t=1&c=x", "/app/", "/app/sw.js", "/app/config.json"):
        response = await client.get(path, allow_redirects=False)  # Host: 127.0.0.1:<port>
        assert response.status == 308 and response.headers["Location"] == origin + path, path
        assert_strict(response)
    bare = await client.get("/app?lang=zh-HK", headers=at_origin(auth_service), allow_redirects=False)
    assert bare.status == 308 and bare.headers["Location"] == origin + "/app/?lang=zh-HK"
    # Behind the gateway, the host the citizen used is X-Forwarded-Host.
    forwarded = await client.get("/app/authorize?tx=abc", headers={"X-Forwarded-Host": "127.0.0.1:8000"}, allow_redirects=False)
    assert forwarded.status == 308 and forwarded.headers["Location"] == origin + "/app/authorize?tx=abc"
    through = await client.get("/app/", headers={"X-Forwarded-Host": at_origin(auth_service)["Host"]})
    assert through.status == 200 and await through.read() == INDEX


async def test_config_tells_the_app_its_issuer_and_relying_party(auth_service):
    response = await auth_service.client.get("/app/config.json", headers=at_origin(auth_service))
    assert response.status == 200 and response.content_type == "application/json"
    assert_strict(response)
    port = urlsplit(auth_service.url).port
    assert await response.json() == {"issuer": auth_service.url, "rp_id": "localhost", "origin": f"http://localhost:{port}",
                                     "languages": ["en", "zh-HK", "zh-CN"]}

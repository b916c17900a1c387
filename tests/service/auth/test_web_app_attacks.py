"""The web app's files under /app/ attacked from outside (issue 21): request targets written raw on the socket (an
HTTP client would normalise them) that try to leave the app's folder, reach a dot file or a link out of it, or put
another host or a header into the 308's Location. Only the app's own files are ever served, and the Location is always
the app's one origin with the path and query still percent-encoded."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit

import pytest

from .test_web_app import FILES, OUTSIDE, app_folder, assert_strict


@pytest.fixture
def auth_variables(tmp_path):
    """The app's folder of test_web_app, with links leading out of it: a file, a folder, and a loop."""
    folder = app_folder(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.js").write_bytes(OUTSIDE)
    os.symlink(tmp_path / "outside.txt", folder / "js" / "linked.js")
    os.symlink(tmp_path / "outside", folder / "linked")
    os.symlink(folder, folder / "loop")
    return {"AUTH_WEB_APP_DIR": str(folder)}


async def raw_get(auth_service, target: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET `target` exactly as written (no client normalising it): (status, headers, body)."""
    port = urlsplit(auth_service.url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    fields = headers if headers is not None else {"Host": f"localhost:{port}"}
    writer.write("\r\n".join([f"GET {target} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items()),
                              "Connection: close", "", ""]).encode("latin-1"))
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head, f"no answer to {target!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return int(status_line.split()[1]), {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}, body


TRAVERSALS = [
    "/app/../outside.txt", "/app/js/../../outside.txt", "/app/%2e%2e/outside.txt", "/app/js/%2e%2e/%2e%2e/outside.txt",
    "/app/js/..%2f..%2foutside.txt", "/app/..%2foutside.txt", "/app/..%5coutside.txt", "/app/js\\..\\..\\outside.txt",
    "/app/%2fetc%2fpasswd.txt", "/app//etc/hosts.txt", "/app/js/main.js%00.png", "/app/main.js%00",
    "/app/.secret", "/app/%2esecret", "/app/js/.%2e/.secret", "/app/js/linked.js", "/app/linked/secret.js",
    "/app/loop/js/main.js", "/app/loop/loop/sw.js", "/app/outside.txt",
]


async def test_no_path_leaves_the_apps_folder(auth_service):
    """Files are looked up by name in what was read at start (no file system access per request), links out of the
    folder and dot files were never read: each of these is a 404 (or, for a last segment without a dot, index.html)."""
    for target in TRAVERSALS:
        status, headers, body = await raw_get(auth_service, target)
        assert OUTSIDE not in body and b"not served" not in body, target
        assert status == 404 or (status == 200 and body == FILES["index.html"]), (target, status, body[:80])
        if status == 404 and target.startswith("/app/") and "//" not in target:
            assert headers["content-type"].startswith("application/problem+json"), target
    # The folder's own files are still served, through a percent-encoded slash too.
    status, _, body = await raw_get(auth_service, "/app/js%2fmain.js")
    assert status == 200 and body == FILES["js/main.js"]


async def test_a_path_too_long_is_refused_not_served(auth_service):
    for target in ("/app/" + "a" * 9000, "/app/" + "a/" * 4000 + "x.js"):
        status, _, body = await raw_get(auth_service, target)
        assert 400 <= status < 500 and OUTSIDE not in body, status


async def test_the_308_always_names_the_apps_origin_and_injects_nothing(auth_service):
    port = urlsplit(auth_service.url).port
    origin = f"http://localhost:{port}"
    hosts = [{"Host": "evil.example"}, {"Host": f"127.0.0.1:{port}", "X-Forwarded-Host": "evil.example"},
             {"Host": f"127.0.0.1:{port}", "X-Forwarded-Host": "evil.example, localhost"},
             {"Host": "localhost@evil.example"}, {"Host": f"127.0.0.1:{port}", "X-Forwarded-Host": "localhost:1"}]
    targets = {
        "/app/authorize?tx=abc": "/app/authorize?tx=abc",
        # A request target in absolute form (as to a proxy): its path only, never its host.
        "http://evil.example/app/authorize?tx=1": "/app/authorize?tx=1",
        # An encoded CR LF in the query stays encoded: no header can be injected, no 500.
        "/app/authorize?x=%0d%0aSet-Cookie:%20a=b": "/app/authorize?x=%0D%0ASet-Cookie:%20a=b",
        "/app?x=%0d%0aSet-Cookie:%20a=b": "/app/?x=%0D%0ASet-Cookie:%20a=b",
        "/app/config.json": "/app/config.json",
    }
    for target, path in targets.items():
        for headers in hosts:
            status, answer, body = await raw_get(auth_service, target, headers)
            assert status == 308, (target, headers, status, body[:200])
            assert answer["location"].lower() == (origin + path).lower(), (target, headers, answer["location"])
            assert "set-cookie" not in answer and body == b""
            assert answer["cache-control"] == "no-store"
    # The bare /app at the origin itself is sent to /app/ with its query, still encoded.
    status, answer, _ = await raw_get(auth_service, "/app?x=%0d%0a", {"Host": f"localhost:{port}"})
    assert status == 308 and answer["location"].lower() == f"{origin}/app/?x=%0d%0a" and "set-cookie" not in answer


async def test_config_json_is_revalidated_and_never_sent_under_another_host(auth_service):
    client, port = auth_service.client, urlsplit(auth_service.url).port
    response = await client.get("/app/config.json", headers={"Host": f"localhost:{port}"})
    assert response.status == 200 and response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"]
    assert_strict(response)
    moved = await client.get("/app/config.json", headers={"Host": "evil.example"}, allow_redirects=False)
    assert moved.status == 308 and moved.headers["Cache-Control"] == "no-store" and await moved.read() == b""

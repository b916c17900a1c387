"""The OAuth error handler answers OAuth errors of the routes under /oidc only; every other answer stays a problem.

auth's /oidc routes are routes of its own application (no sub-application), so the handler sees every request:
an OAuth error met elsewhere must not leave as OAuth JSON, and a path under /oidc that does not exist is the
service kit's 404 problem, as before.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from libs.service import ServiceSettings, create_service_app
from services.auth.oidc.endpoints.error_handler import oauth_error_handler
from services.auth.oidc.errors import InvalidGrant

PROBLEM = "application/problem+json"


async def refuse_grant(request: web.Request) -> web.Response:
    raise InvalidGrant("the code has expired")


def app_with_handler() -> web.Application:
    app = create_service_app(ServiceSettings(service="oauth-scope-test"))
    app.router.add_post("/oidc/token", refuse_grant)
    app.router.add_post("/v1/elsewhere", refuse_grant)
    app.middlewares.append(oauth_error_handler)  # innermost, as install_oidc puts it
    return app


async def test_an_oauth_error_under_oidc_is_oauth_json_never_cached():
    async with TestClient(TestServer(app_with_handler())) as client:
        response = await client.post("/oidc/token")
        assert response.status == 400
        assert response.content_type == "application/json"
        assert await response.json() == {"error": "invalid_grant", "error_description": "the code has expired"}
        assert response.headers["Cache-Control"] == "no-store"


async def test_an_oauth_error_outside_oidc_is_a_500_problem_not_oauth_json():
    async with TestClient(TestServer(app_with_handler())) as client:
        response = await client.post("/v1/elsewhere")
        assert response.status == 500
        assert response.content_type == PROBLEM
        assert "error" not in await response.json(content_type=PROBLEM)


async def test_an_unknown_path_under_oidc_is_a_404_problem():
    async with TestClient(TestServer(app_with_handler())) as client:
        response = await client.get("/oidc/no-such-endpoint")
        assert response.status == 404
        assert response.content_type == PROBLEM

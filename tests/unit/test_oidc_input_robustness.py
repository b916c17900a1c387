"""Inputs that used to answer 500 (found while fuzzing the OpenAPI document): each is now a documented 4xx."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from libs.service import ServiceSettings, create_service_app
from services.auth.callers import AUTH
from services.auth.clients.metadata import ClientMetadata
from services.auth.clients.registry import Client
from services.auth.oidc.errors import UnknownLink
from services.auth.oidc.endpoints import install_oidc
from services.auth.oidc.endpoints.forms import read_form
from services.auth.oidc.authorization import parse_request
from services.auth.oidc.client_auth import ASSERTION_TYPE, authenticate_client
from services.auth.oidc.errors import InvalidRequest, OAuthError
from services.auth.oidc.login import tx_from_link
from services.auth.oidc.pkce import check_challenge, s256, verifier_matches

REDIRECT = "https://rp.example/cb"
CLIENT = Client("rp-1", ClientMetadata(client_name="RP", redirect_uris=[REDIRECT], scope="openid"))
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
FORM = "application/x-www-form-urlencoded"


def test_max_age_must_be_ascii_digits():
    base = {"client_id": "rp-1", "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
            "code_challenge": s256(VERIFIER), "code_challenge_method": "S256"}
    for value in ("²", "٣", "1e3", "-1"):
        with pytest.raises(InvalidRequest, match="max_age") as refused:
            parse_request(CLIENT, {**base, "max_age": value})
        assert refused.value.back_to is not None  # goes back to the client
    assert parse_request(CLIENT, {**base, "max_age": "0"}).max_age == 0


def test_a_link_that_is_not_a_url_is_an_unknown_link():
    with pytest.raises(UnknownLink) as refused:
        tx_from_link("harbourid://[authorize?tx=abc")
    assert (refused.value.slug, refused.value.status) == ("unknown-link", 400)


def test_jwks_keys_must_be_objects():
    with pytest.raises(ValidationError, match="every key must be a JWK object"):
        ClientMetadata(client_name="A", kind="agency", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [1]})


def test_pkce_values_with_a_trailing_newline_do_not_pass():
    assert check_challenge(s256(VERIFIER) + "\n", "S256")
    assert not verifier_matches(VERIFIER + "\n", s256(VERIFIER))


async def test_an_unsupported_client_assertion_type_is_an_invalid_request():
    # Refused before any client is looked up (no database needed).
    with pytest.raises(InvalidRequest, match="client_assertion_type"):
        await authenticate_client(None, None, {"client_assertion_type": "\x0f"}, audiences=["https://id.example"])
    with pytest.raises(OAuthError) as missing:  # the right type alone is no authentication at all
        await authenticate_client(None, None, {"client_assertion_type": ASSERTION_TYPE}, audiences=["https://id.example"])
    assert missing.value.error == "invalid_client"


@pytest.fixture
async def form_client():
    async def echo(request: web.Request) -> web.Response:
        try:
            return web.json_response(await read_form(request))
        except OAuthError as exc:
            return web.json_response(exc.body(), status=exc.status)

    app = web.Application(client_max_size=1024)
    app.router.add_post("/form", echo)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (FORM, b"grant_type=\xff\xfe"),  # not UTF-8
        (FORM + "; charset=bogus", b"grant_type=x"),  # unknown charset
        (FORM + "; charset=utf-16", b"grant_type=ab"),  # not that charset (an odd number of bytes)
        ("multipart/form-data; boundary=zz", b"garbage"),  # not a form the OAuth endpoints take
    ],
)
async def test_an_unreadable_form_is_an_invalid_request(form_client, content_type, body):
    response = await form_client.post("/form", data=body, headers={"Content-Type": content_type})
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_a_form_above_the_size_limit_stays_a_413(form_client):
    response = await form_client.post("/form", data=b"a=" + b"x" * 4096, headers={"Content-Type": FORM})
    assert response.status == 413


@pytest.fixture
async def oidc_client():
    """auth's OIDC routes on the service kit; these requests fail before anything needs the database."""
    app = create_service_app(ServiceSettings(service="auth-test"))
    app[AUTH] = SimpleNamespace(settings=SimpleNamespace(issuer="https://id.example"))
    install_oidc(app)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "target", "content_type", "body"),
    [
        ("GET", "/oidc/logout?state=1&state=2", None, None),  # repeated
        ("GET", "/oidc/logout?state=" + "x" * 2049, None, None),  # too long
        ("POST", "/oidc/authorize", "multipart/form-data; boundary=zz", b"garbage"),
        ("POST", "/oidc/authorize", FORM, b"client_id=\xff"),
        ("POST", "/oidc/authorize", None, None),
    ],
)
async def test_bad_browser_requests_get_an_error_page(oidc_client, method, target, content_type, body):
    headers = {"Content-Type": content_type} if content_type else {}
    response = await oidc_client.request(method, target, data=body, headers=headers)
    assert response.status == 400
    assert response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]

"""libs.errors: one refusal hierarchy, declarative domain errors, and the kit's one renderer for all of them."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from libs import errors
from libs.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    NotReady,
    PayloadTooLarge,
    Refused,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from libs.service import ServiceSettings, create_service_app
from libs.service import problems
from libs.service.problems import PROBLEM_CONTENT_TYPE, Problem, problem_response

PROBLEM = PROBLEM_CONTENT_TYPE


class AlreadyDecided(Conflict):
    slug = "already-decided"
    title = "Already decided"


class Busy(NotReady):
    slug, title, retry_after = "busy", "Busy", 2


@pytest.mark.parametrize(
    ("cls", "status", "slug"),
    [
        (Refused, 400, "bad-request"),
        (BadRequest, 400, "bad-request"),
        (Unauthorized, 401, "unauthorized"),
        (Forbidden, 403, "forbidden"),
        (NotFound, 404, "not-found"),
        (Conflict, 409, "conflict"),
        (Gone, 410, "gone"),
        (PayloadTooLarge, 413, "payload-too-large"),
        (Unprocessable, 422, "unprocessable"),
        (TooManyRequests, 429, "too-many-requests"),
        (NotReady, 503, "service-unavailable"),
    ],
)
def test_each_refusal_declares_its_status_and_slug(cls, status, slug):
    refusal = cls("why")
    assert isinstance(refusal, Refused)
    assert (refusal.status, refusal.slug) == (status, slug)
    assert refusal.to_dict("/here") == {
        "type": errors.PROBLEM_TYPE_BASE + slug,
        "title": cls.title,
        "status": status,
        "detail": "why",
        "instance": "/here",
    }


def test_a_domain_error_is_a_declarative_subclass():
    refusal = AlreadyDecided("answered already", request_id="r1")
    assert isinstance(refusal, Conflict)
    assert refusal.to_dict() == {
        "type": "https://harbour-id.dev/problems/already-decided",
        "title": "Already decided",
        "status": 409,
        "detail": "answered already",
        "request_id": "r1",
    }
    assert str(refusal) == "answered already"
    assert str(AlreadyDecided()) == "Already decided"
    assert "detail" not in AlreadyDecided().to_dict()


def test_overrides_apply_to_the_one_instance_only():
    one_off = Forbidden("no", slug="insufficient-scope", title="Insufficient scope", status=403)
    assert (one_off.slug, one_off.title) == ("insufficient-scope", "Insufficient scope")
    assert (Forbidden.slug, Forbidden("no").slug) == ("forbidden", "forbidden")


def test_headers_are_per_instance():
    first = Unauthorized("who?", headers={"WWW-Authenticate": "Bearer"})
    first.headers["X-Extra"] = "1"
    assert Unauthorized("again").headers == {}
    given = {"WWW-Authenticate": "Bearer"}
    Unauthorized("x", headers=given).headers["X"] = "y"
    assert given == {"WWW-Authenticate": "Bearer"}


def test_retry_after_becomes_the_header():
    assert TooManyRequests("slow down", retry_after=7).headers == {"Retry-After": "7"}
    assert NotReady("warming up", retry_after=1).headers == {"Retry-After": "1"}
    assert NotReady("no hint").headers == {}
    assert Busy("full").headers == {"Retry-After": "2"}
    assert Busy("full", retry_after=5).headers == {"Retry-After": "5"}
    # An explicit header wins over the declared default.
    assert NotReady("x", headers={"Retry-After": "9"}, retry_after=1).headers == {"Retry-After": "9"}
    assert "retry_after" not in TooManyRequests("x", retry_after=3).to_dict()


def test_the_kit_problem_is_the_same_hierarchy():
    assert Problem is Refused
    assert problems.Unauthorized is Unauthorized
    assert problems.Forbidden is Forbidden
    assert problems.NotFound is NotFound
    assert problems.Conflict is Conflict
    assert problems.PayloadTooLarge is PayloadTooLarge
    assert problems.ServiceUnavailable is NotReady
    assert issubclass(problems.MalformedBody, BadRequest)
    assert issubclass(problems.ValidationFailed, Unprocessable)
    # The kit's historical one-off form keeps working.
    legacy = Problem("odd query", status=400, slug="bad-query", title="Bad query")
    assert legacy.to_dict()["type"].endswith("/bad-query")


def test_a_one_off_refusal_overrides_status_slug_and_title_and_keeps_headers_and_members():
    refusal = Refused("the link was used", status=410, slug="link-unusable", title="Link unusable",
                      headers={"Retry-After": "3"}, attempts=2)
    assert (refusal.status, refusal.slug, refusal.title, str(refusal)) == (410, "link-unusable", "Link unusable", "the link was used")
    assert refusal.headers == {"Retry-After": "3"}
    assert refusal.extensions == {"attempts": 2}
    # The class keeps its own declaration: an override belongs to the one instance.
    assert (Refused.status, Refused.slug, Refused.title) == (400, "bad-request", "Bad request")


@pytest.mark.parametrize("module", ["services.auth.errors", "services.formfill.errors", "services.notify.errors",
                                    "services.signing.errors", "services.gateway.errors",
                                    "libs.callers.refusals", "libs.consented_requests.refusals"])
def test_every_declared_refusal_is_a_libs_refusal_with_its_own_slug(module):
    import importlib
    import inspect

    declared = [cls for _, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass)
                if issubclass(cls, Exception) and cls.__module__ == module]
    assert declared
    for cls in declared:
        assert issubclass(cls, Refused), cls
        assert cls.status >= 400 and cls.slug and cls.title, cls


def test_problem_response_renders_status_body_and_headers():
    response = problem_response(TooManyRequests("slow down", retry_after=4, bucket="ip"))
    assert response.status == 429
    assert response.content_type == PROBLEM
    assert response.headers["Retry-After"] == "4"


async def _raise(refusal: Exception):
    async def handler(request: web.Request) -> web.Response:
        raise refusal

    return handler


@pytest.fixture
async def client():
    app = create_service_app(ServiceSettings(service="errors-test"))
    refusals = {
        "decided": AlreadyDecided("answered already", request_id="r1"),
        "busy": Busy("full"),
        "limited": TooManyRequests("slow down", retry_after=5),
        "challenge": Unauthorized("token expired", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}),
        "one-off": Refused("unclosed tag", status=422, slug="template-syntax", title="Template syntax", line=3),
    }
    for name, refusal in refusals.items():
        app.router.add_get(f"/{name}", await _raise(refusal))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_the_middleware_renders_a_domain_refusal(client):
    response = await client.get("/decided")
    assert response.status == 409
    assert response.content_type == PROBLEM
    assert await response.json(content_type=PROBLEM) == {
        "type": "https://harbour-id.dev/problems/already-decided",
        "title": "Already decided",
        "status": 409,
        "detail": "answered already",
        "instance": "/decided",
        "request_id": "r1",
    }


@pytest.mark.parametrize(("path", "status", "retry_after"), [("/busy", 503, "2"), ("/limited", 429, "5")])
async def test_the_middleware_sends_retry_after(client, path, status, retry_after):
    response = await client.get(path)
    assert response.status == status
    assert response.headers["Retry-After"] == retry_after
    assert (await response.json(content_type=PROBLEM))["status"] == status


async def test_the_middleware_sends_challenges_and_extension_members(client):
    response = await client.get("/challenge")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    response = await client.get("/one-off")
    body = await response.json(content_type=PROBLEM)
    assert (response.status, body["type"], body["title"], body["line"]) == (
        422, "https://harbour-id.dev/problems/template-syntax", "Template syntax", 3)

"""The OpenAPI documents: the builder, auth's declarations against its routes, and the gateway's merge and pages."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

import aiohttp
import jsonschema_rs
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from libs.service.openapi import Body, Operation, document, html, install_openapi_route, oauth_error, openapi_path
from services.auth.endpoints import ENDPOINTS as AUTH_ENDPOINT_GROUPS, routes as auth_routes
from services.auth.oidc.endpoints import install_oidc
from services.auth.openapi import OPERATIONS as AUTH_OPERATIONS
from services.gateway import openapi as gateway_openapi
from services.gateway.openapi import documents as gateway_documents
from services.gateway.openapi import merging as gateway_merge
from services.gateway.openapi import install_openapi, merge, render_docs

PROBLEM = {"$ref": "#/components/schemas/Problem"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


class Inner(BaseModel):
    name: str = Field(min_length=1)


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    kind: Literal["a", "b"]
    inner: Inner
    note: str | SkipJsonSchema[None] = None


class NewThing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["a", "b"]
    inners: list[Inner]


THING_OPERATIONS = (
    Operation("POST", "/v1/things", "Create a thing", ("things",), request_model=NewThing,
              responses={201: Thing, 400: None, 415: None, 422: "the body does not match"}, security=("admin",), security_optional=True),
    Operation("GET", "/v1/things/{thing_id:[a-z0-9]+}", "One thing", ("things",), responses={200: Thing, 404: None},
              security=("deviceToken",), query_params=(("verbose", {"type": "boolean"}, False),)),
    Operation("POST", "/v1/things/token", "OAuth-style", ("things",), form_fields={"grant_type": {"type": "string"}},
              form_required=("grant_type",), responses={200: {"type": "object"}, 400: oauth_error("invalid_request")},
              security=("clientAuth",), security_optional=True),
    Operation("GET", "/v1/things/page", "A page", ("things",),
              responses={200: html("a page"), 303: Body("elsewhere", headers={"Location": {"required": True, "schema": {"type": "string"}}})}),
    Operation("DELETE", "/v1/things/{thing_id}", "Remove", ("things",), responses={204: None, 404: None}, security=("deviceToken",)),
)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def operations_of(doc: dict) -> list[tuple[str, str, dict]]:
    return [(method, path, op) for path, item in doc["paths"].items() for method, op in item.items() if method in METHODS]


def assert_valid_openapi(doc: dict) -> None:
    """OpenAPI 3.1 meta-schema (the one schemathesis bundles), JSON Schema 2020-12 components, resolvable refs."""
    assert doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(doc).validate()
    for name, schema in doc["components"]["schemas"].items():
        jsonschema_rs.meta.validate(schema)
        assert "$defs" not in schema, f"{name}: nested definitions must be hoisted into components"
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], f"unresolved {ref}"
    ids = [op["operationId"] for _, _, op in operations_of(doc)]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for method, path, op in operations_of(doc):
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), f"{method} {path}: path parameters"
        for scheme in (name for requirement in op["security"] for name in requirement):
            assert scheme in doc["components"]["securitySchemes"]


# --- the builder ---------------------------------------------------------------


def test_the_document_is_valid_openapi_31_with_models_hoisted_into_components():
    doc = document(THING_OPERATIONS, title="Things", version="1", servers=["https://id.example"])
    assert_valid_openapi(doc)
    assert doc["servers"] == [{"url": "https://id.example"}]
    assert set(doc["paths"]) == {"/v1/things", "/v1/things/{thing_id}", "/v1/things/token", "/v1/things/page"}
    schemas = doc["components"]["schemas"]
    assert {"Thing", "NewThing", "Inner", "Problem", "ProblemFieldError", "OAuthError"} <= set(schemas)
    assert schemas["Thing"]["properties"]["inner"] == {"$ref": "#/components/schemas/Inner"}
    # A member left out rather than sent as null is neither required nor nullable.
    assert "note" not in schemas["Thing"]["required"]
    assert schemas["Thing"]["properties"]["note"]["type"] == "string"
    assert schemas["Thing"]["additionalProperties"] is False


def test_requests_responses_parameters_and_security():
    doc = document(THING_OPERATIONS, title="Things", version="1")
    create = doc["paths"]["/v1/things"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewThing"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Thing"}
    assert create["responses"]["422"]["description"] == "the body does not match"
    assert create["security"] == [{"admin": []}, {}]
    show = doc["paths"]["/v1/things/{thing_id}"]["get"]
    assert show["parameters"] == [
        {"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
        {"name": "verbose", "in": "query", "required": False, "schema": {"type": "boolean"}},
    ]
    assert show["security"] == [{"deviceToken": []}]
    token = doc["paths"]["/v1/things/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form == {"type": "object", "properties": {"grant_type": {"type": "string"}}, "required": ["grant_type"]}
    assert token["responses"]["400"]["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}
    page = doc["paths"]["/v1/things/page"]["get"]
    assert page["security"] == []
    assert list(page["responses"]["200"]["content"]) == ["text/html"]
    assert "content" not in page["responses"]["303"] and page["responses"]["303"]["headers"]["Location"]["required"]
    assert "content" not in doc["paths"]["/v1/things/{thing_id}"]["delete"]["responses"]["204"]


def test_every_error_is_a_problem_unless_declared_otherwise():
    doc = document(THING_OPERATIONS, title="Things", version="1")
    problem = doc["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])
    for method, path, op in operations_of(doc):
        for status, response in op["responses"].items():
            if int(status) >= 400 and path != "/v1/things/token":
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, f"{method} {path} {status}"


def test_mistakes_in_declarations_are_refused():
    with pytest.raises(ValueError, match="declared twice"):
        document([THING_OPERATIONS[0], THING_OPERATIONS[0]], title="x", version="1")
    with pytest.raises(ValueError, match="unknown security scheme"):
        document([Operation("GET", "/x", "x", security=("cookie",), responses={200: None})], title="x", version="1")

    class Inner(BaseModel):  # another model of the same name
        other: int

    class Clash(BaseModel):
        inner: Inner

    with pytest.raises(ValueError, match="named Inner"):
        document([THING_OPERATIONS[0], Operation("GET", "/y", "y", responses={200: Clash})], title="x", version="1")


def test_aiohttp_templates_become_openapi_paths():
    assert openapi_path("/v1/a/{id}/b/{tail:.*}") == "/v1/a/{id}/b/{tail}"


async def test_a_service_serves_its_document():
    app = web.Application()
    install_openapi_route(app, THING_OPERATIONS, title="Things")
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert (await response.json())["info"]["title"] == "Things"


# --- auth's declarations -------------------------------------------------------


def test_auth_declares_exactly_the_routes_it_serves():
    app = web.Application()
    app.add_routes(auth_routes)
    install_oidc(app)
    served = set()
    for route in app.router.routes():
        methods = ("GET", "POST") if route.method == "*" else (route.method,)
        served |= {(m, route.resource.canonical) for m in methods if m != "HEAD"}
    declared = {(op.method, op.path) for op in AUTH_OPERATIONS}
    # Declared with documented=False: endless streams (docs/api.md), left out of the OpenAPI document on purpose; the
    # web app's /app (a 308 to /app/) and files in its folders (/app/{file} documents them).
    undocumented = {(e.method, re.sub(r":[^}]+}", "}", e.path))  # a route's regex is not part of its canonical path
                    for group in AUTH_ENDPOINT_GROUPS for e in group.endpoints if not e.documented}
    assert undocumented == {("GET", "/v1/approvals/stream"), ("GET", "/app"), ("GET", "/app/{folder}/{path}")}
    assert declared | undocumented == served and not declared & undocumented


def test_auth_document_is_valid_and_its_errors_are_problems_or_oauth_errors():
    doc = document(AUTH_OPERATIONS, title="auth", version="1")
    assert_valid_openapi(doc)
    schemas = doc["components"]["schemas"]
    # The request bodies are the handlers' own models.
    assert doc["paths"]["/v1/enrolments"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EnrolmentRequest"}
    assert {"EnrolmentRequest", "ActivationRequest", "ClientMetadata", "ApprovalRequest", "Requester"} <= set(schemas)
    oauth = {"/oidc/par", "/oidc/token", "/oidc/bc-authorize", "/oidc/userinfo", "/oidc/introspect", "/oidc/revoke"}
    html_pages = {"/oidc/authorize", "/oidc/logout"}
    for method, path, op in operations_of(doc):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            media = response["content"]
            if status == "413" or (path not in oauth and path not in html_pages):
                assert media == {"application/problem+json": {"schema": PROBLEM}}, f"{method} {path} {status}"
            elif path in oauth:
                assert media == {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}, f"{method} {path}"
            else:
                assert list(media) == ["text/html"], f"{method} {path} {status}"


# --- the gateway ---------------------------------------------------------------


def service_doc(title: str, operations) -> dict:
    return document(operations, title=title, version="1")


def routed(method: str, path: str) -> str | None:
    if path.startswith("/v1/things"):
        return "things"
    if path.startswith("/v1/others"):
        return "others"
    return None


OTHER_OPERATIONS = (
    Operation("GET", "/v1/others", "Others", ("others",), responses={200: Thing, 404: None}),
    Operation("GET", "/v1/things-not-routed-here", "Stray", ("others",), responses={200: None}),
)


def test_the_gateway_merges_what_it_routes_and_adds_its_own_statuses():
    docs = {"things": service_doc("things", THING_OPERATIONS), "others": service_doc("others", OTHER_OPERATIONS)}
    merged = merge(docs, routed, server_url="https://id.example")
    assert_valid_openapi(merged)
    assert merged["servers"] == [{"url": "https://id.example"}]
    assert merged["info"]["title"] == "Harbour ID"
    paths = set(merged["paths"])
    assert {"/healthz", "/readyz", "/openapi.json", "/docs"} <= paths
    assert "/metrics" not in paths  # served on the internal metrics listener only
    assert {"/v1/things", "/v1/things/{thing_id}", "/v1/others"} <= paths
    assert "/v1/things-not-routed-here" not in paths  # declared by "others", but the gateway sends it to "things"
    proxied = merged["paths"]["/v1/things/{thing_id}"]["get"]["responses"]
    for status in ("429", "502", "503", "504"):
        assert proxied[status]["content"]["application/problem+json"]["schema"] == PROBLEM
    assert proxied["404"]["content"]["application/problem+json"]["schema"] == PROBLEM  # the service's own, kept
    assert "text/plain" in proxied["400"]["content"]  # the HTTP server's own refusal of an over-long request line
    own = merged["paths"]["/healthz"]["get"]["responses"]
    assert "429" in own and "502" not in own
    assert merged["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"}


def test_schemas_of_the_same_name_from_two_services_are_kept_apart():
    other = service_doc("others", OTHER_OPERATIONS)
    other["components"]["schemas"]["Thing"] = {"type": "object", "properties": {"size": {"type": "integer"}}}
    merged = merge({"things": service_doc("things", THING_OPERATIONS), "others": other}, routed, server_url="https://x")
    assert_valid_openapi(merged)
    assert merged["components"]["schemas"]["OthersThing"]["properties"] == {"size": {"type": "integer"}}
    assert merged["paths"]["/v1/others"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OthersThing"}
    assert "inner" in merged["components"]["schemas"]["Thing"]["properties"]


def test_every_auth_operation_is_routed_to_auth_by_the_gateway():
    dropped = [
        f"{op.method} {op.path}" for op in AUTH_OPERATIONS
        if gateway_openapi.gateway_route_of(op.method, gateway_merge._sample_path(op.openapi_path)) != "auth"
    ]
    assert not dropped, f"declared by auth but not routed to it: {dropped}"
    merged = merge({"auth": service_doc("auth", AUTH_OPERATIONS)}, gateway_openapi.gateway_route_of, server_url="https://x")
    assert_valid_openapi(merged)
    assert len(operations_of(merged)) == len(AUTH_OPERATIONS) + len(gateway_openapi.GATEWAY_OPERATIONS)


def test_the_docs_page_lists_every_operation_escaped_and_self_contained():
    hostile = Operation("GET", "/v1/things/evil", "<script>alert(1)</script>", ("things",), responses={200: None})
    merged = merge({"things": service_doc("things", (*THING_OPERATIONS, hostile))}, routed, server_url="https://x")
    page = render_docs(merged, missing=["others"], nonce="n0nce")
    for method, path, _ in operations_of(merged):
        assert path in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "NewThing (application/json)" in page and "Problem (application/problem+json)" in page
    assert '<style nonce="n0nce">' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page must not load anything from elsewhere"
    assert "Not yet available: others" in page


async def test_the_gateway_serves_the_merged_document_and_fetches_late_services_again(monkeypatch):
    monkeypatch.setattr(gateway_documents, "REFETCH_INTERVAL_S", 0.0)
    things = web.Application()
    install_openapi_route(things, THING_OPERATIONS, title="things")
    late = {"up": False}

    async def others_document(request: web.Request) -> web.Response:
        if not late["up"]:
            raise web.HTTPServiceUnavailable()
        return web.json_response(service_doc("others", OTHER_OPERATIONS))

    others = web.Application()
    others.router.add_get("/openapi.json", others_document)
    async with TestServer(things) as things_server, TestServer(others) as others_server:
        gateway = web.Application()
        upstreams = {"things": str(things_server.make_url("")), "others": str(others_server.make_url(""))}
        install_openapi(gateway, upstreams, server_url="https://id.example/", route_of=routed)
        async with TestClient(TestServer(gateway)) as client:
            for _ in range(50):
                doc = await (await client.get("/openapi.json")).json()
                if "/v1/things" in doc["paths"]:
                    break
                await asyncio.sleep(0.05)
            assert doc["servers"] == [{"url": "https://id.example"}]
            assert "/v1/things" in doc["paths"] and "/v1/others" not in doc["paths"]
            late["up"] = True
            for _ in range(50):  # each request has the missing document fetched again, in the background
                doc = await (await client.get("/openapi.json")).json()
                if "/v1/others" in doc["paths"]:
                    break
                await asyncio.sleep(0.05)
            assert "/v1/others" in doc["paths"]
            page = await client.get("/docs")
            assert page.status == 200 and page.content_type == "text/html"
            csp = page.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
            nonce = re.search(r"style-src 'nonce-([^']+)'", csp).group(1)
            assert f'<style nonce="{nonce}">' in await page.text()


async def test_requests_refetch_a_missing_document_in_the_background_at_most_once_per_interval():
    calls = 0

    async def unavailable(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        raise web.HTTPServiceUnavailable()

    upstream = web.Application()
    upstream.router.add_get("/openapi.json", unavailable)
    async with TestServer(upstream) as server, aiohttp.ClientSession() as session:
        documents = gateway_openapi.OpenAPIDocuments({"others": str(server.make_url("")).rstrip("/")}, routed, "https://x")
        documents.session = session
        for _ in range(3):
            documents.refresh_soon()
            await asyncio.sleep(0.1)
        assert calls == 1 and documents.missing == ["others"]
        assert "/healthz" in documents.merged()["paths"]  # what is there is served meanwhile
        documents._last_attempt -= gateway_documents.REFETCH_INTERVAL_S  # as if the interval had passed
        documents.refresh_soon()
        await asyncio.sleep(0.1)
        assert calls == 2
        await documents.stop()


def test_install_openapi_refuses_to_be_shadowed_by_a_catch_all_route():
    async def catch_all(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", catch_all)
    with pytest.raises(RuntimeError, match="before the catch-all"):
        install_openapi(app, {}, server_url="https://x")

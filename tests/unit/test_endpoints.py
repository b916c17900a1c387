"""libs.service.endpoints: route, body, answers and refusals declared once; the OpenAPI document derived from them."""

from __future__ import annotations

import json
from typing import Literal

import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict, Field

from libs.errors import Conflict, Forbidden, NotFound, NotReady, Unauthorized
from libs.service import ServiceSettings, create_service_app
from libs.service.endpoints import Endpoints
from libs.service.openapi import JSON_BODY_ERRORS, OPENAPI_DOCUMENT, document, html, install_openapi_route

PROBLEM = "application/problem+json"
BASE = "https://harbour-id.dev/problems/"


class AlreadyDecided(Conflict):
    """the citizen has answered this request already"""

    slug = "already-decided"
    title = "Already decided"


class UnknownParcel(NotFound):
    slug = "unknown-parcel"
    title = "Unknown parcel"


class NewParcel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight_g: int = Field(gt=0)
    note: str | None = None


class ParcelView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parcel_id: str
    status: Literal["accepted", "sent"]
    note: str | None = None


class Receipt(BaseModel):
    receipt_id: str


async def clerk(request: web.Request) -> str:
    if request.headers.get("Authorization") != "Bearer clerk":
        raise Unauthorized("a clerk's token is required", headers={"WWW-Authenticate": 'Bearer realm="test"'})
    return "clerk-1"


endpoints = Endpoints(tags=("parcels",), security=("bearer",))
PARCELS: dict[str, ParcelView] = {}


@endpoints.post("/v1/parcels", summary="Accept a parcel", caller=clerk, body=NewParcel,
                answers={201: ParcelView}, refusals=(Forbidden,), exclude_none=True)
async def accept(request: web.Request, caller: str, body: NewParcel) -> ParcelView:
    if body.weight_g > 30_000:
        raise Forbidden("too heavy for this counter", limit_g=30_000)
    parcel = ParcelView(parcel_id=f"p{len(PARCELS) + 1}", status="accepted", note=body.note)
    PARCELS[parcel.parcel_id] = parcel
    return parcel


@endpoints.get("/v1/parcels/{parcel_id}", summary="One parcel", caller=clerk, answers={200: ParcelView},
               refusals=(UnknownParcel,), headers={"Cache-Control": "no-store"})
async def show(request: web.Request, caller: str) -> ParcelView:
    parcel = PARCELS.get(request.match_info["parcel_id"])
    if parcel is None:
        raise UnknownParcel("no such parcel")
    return parcel


@endpoints.post("/v1/parcels/{parcel_id}/send", summary="Send it", caller=clerk,
                answers={200: ParcelView, 202: Receipt, 409: "sent already, or being sent"},
                refusals=(AlreadyDecided, UnknownParcel, NotReady))
async def send(request: web.Request, caller: str) -> tuple[int, BaseModel]:
    parcel = PARCELS.get(request.match_info["parcel_id"])
    if parcel is None:
        raise UnknownParcel("no such parcel")
    if parcel.status == "sent":
        raise AlreadyDecided("sent already", parcel_id=parcel.parcel_id)
    if request.query.get("later"):
        return 202, Receipt(receipt_id="r1")
    PARCELS[parcel.parcel_id] = sent = parcel.model_copy(update={"status": "sent"})
    return 200, sent


@endpoints.delete("/v1/parcels/{parcel_id}", summary="Forget it", caller=clerk, answers={204: None}, refusals=(UnknownParcel,))
async def forget(request: web.Request, caller: str) -> None:
    if PARCELS.pop(request.match_info["parcel_id"], None) is None:
        raise UnknownParcel("no such parcel")


@endpoints.get("/v1/parcels/{parcel_id}/label", summary="Its label", caller=clerk, answers={200: ParcelView},
               refusals=(UnknownParcel,), exclude_unset=True)
async def label(request: web.Request, caller: str) -> ParcelView:
    parcel = PARCELS.get(request.match_info["parcel_id"])
    if parcel is None:
        raise UnknownParcel("no such parcel")
    # The domain names a note only for a parcel that has one, and says None for "none written" when asked to.
    if request.query.get("say_none"):
        return ParcelView(parcel_id=parcel.parcel_id, status=parcel.status, note=None)
    return ParcelView(parcel_id=parcel.parcel_id, status=parcel.status)


@endpoints.post("/v1/parcels/{parcel_id}/scan", summary="A scan of its label, read by the handler itself", caller=clerk,
                answers={204: None}, request_model=NewParcel, request_content_type="image/png")
async def scan(request: web.Request, caller: str) -> None:
    await request.read()


@endpoints.get("/parcels/page", summary="The counter's page", security=(), tags=("pages",), answers={200: html("a page")})
async def page(request: web.Request) -> web.Response:
    return web.Response(text="<p>counter</p>", content_type="text/html")


@endpoints.get("/v1/parcels/{parcel_id}/wrong", summary="Answers what it does not declare", answers={200: ParcelView},
               documented=False)
async def wrong(request: web.Request) -> Receipt:
    return Receipt(receipt_id="x")


@pytest.fixture
async def client():
    PARCELS.clear()
    app = create_service_app(ServiceSettings(service="endpoints-test"))
    app.add_routes(endpoints.routes)
    install_openapi_route(app, endpoints.operations, title="Parcels")
    async with TestClient(TestServer(app)) as client:
        yield client


CLERK = {"Authorization": "Bearer clerk"}


# --- serving ---------------------------------------------------------------------


async def test_a_model_answer_is_json_with_the_declared_status(client):
    response = await client.post("/v1/parcels", json={"weight_g": 500}, headers=CLERK)
    assert response.status == 201
    assert response.content_type == "application/json"
    # exclude_none: the unset note is left out.
    assert await response.json() == {"parcel_id": "p1", "status": "accepted"}
    response = await client.get("/v1/parcels/p1", headers=CLERK)
    assert (response.status, response.headers["Cache-Control"]) == (200, "no-store")
    assert await response.json() == {"parcel_id": "p1", "status": "accepted", "note": None}


async def test_exclude_unset_answers_only_the_fields_the_domain_set(client):
    await client.post("/v1/parcels", json={"weight_g": 500}, headers=CLERK)
    assert await (await client.get("/v1/parcels/p1/label", headers=CLERK)).json() == {"parcel_id": "p1", "status": "accepted"}
    said = await client.get("/v1/parcels/p1/label", params={"say_none": "1"}, headers=CLERK)
    assert await said.json() == {"parcel_id": "p1", "status": "accepted", "note": None}


async def test_the_caller_is_authenticated_before_the_body_is_read(client):
    response = await client.post("/v1/parcels", data=b"not json", headers={"Content-Type": "application/json"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="test"'
    assert (await response.json(content_type=PROBLEM))["type"] == BASE + "unauthorized"


@pytest.mark.parametrize(("data", "content_type", "status", "slug"), [
    (b"", "application/json", 400, "malformed-body"),
    (b"{", "application/json", 400, "malformed-body"),
    (b"weight_g=1", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
    (b'{"weight_g": 0}', "application/json", 422, "validation-failed"),
    (b'{"weight_g": 1, "extra": 1}', "application/json", 422, "validation-failed"),
])
async def test_the_body_is_parsed_into_the_declared_model(client, data, content_type, status, slug):
    response = await client.post("/v1/parcels", data=data, headers={**CLERK, "Content-Type": content_type})
    assert response.status == status
    assert (await response.json(content_type=PROBLEM))["type"] == BASE + slug


async def test_refusals_leave_as_problems_without_a_handler_catching_them(client):
    response = await client.post("/v1/parcels", json={"weight_g": 40_000}, headers=CLERK)
    body = await response.json(content_type=PROBLEM)
    assert (response.status, body["type"], body["limit_g"]) == (403, BASE + "forbidden", 30_000)
    await client.post("/v1/parcels", json={"weight_g": 1}, headers=CLERK)
    assert (await client.post("/v1/parcels/p1/send", headers=CLERK)).status == 200
    response = await client.post("/v1/parcels/p1/send", headers=CLERK)
    body = await response.json(content_type=PROBLEM)
    assert (response.status, body["type"], body["parcel_id"]) == (409, BASE + "already-decided", "p1")
    response = await client.get("/v1/parcels/p9", headers=CLERK)
    assert (response.status, (await response.json(content_type=PROBLEM))["type"]) == (404, BASE + "unknown-parcel")


async def test_a_status_and_model_pair_picks_among_declared_answers(client):
    await client.post("/v1/parcels", json={"weight_g": 1}, headers=CLERK)
    response = await client.post("/v1/parcels/p1/send?later=1", headers=CLERK)
    assert (response.status, await response.json()) == (202, {"receipt_id": "r1"})


async def test_nothing_is_204_and_a_response_passes_through(client):
    await client.post("/v1/parcels", json={"weight_g": 1}, headers=CLERK)
    response = await client.delete("/v1/parcels/p1", headers=CLERK)
    assert (response.status, await response.read()) == (204, b"")
    response = await client.get("/parcels/page")
    assert (response.status, response.content_type) == (200, "text/html")
    assert (await client.head("/parcels/page")).status == 200


async def test_an_undeclared_answer_is_a_500_not_a_silent_change(client):
    response = await client.get("/v1/parcels/p1/wrong")
    assert response.status == 500
    assert (await response.json(content_type=PROBLEM))["type"] == BASE + "internal-error"


# --- the document ---------------------------------------------------------------


def operation(doc: dict, method: str, path: str) -> dict:
    return doc["paths"][path][method]


async def test_the_document_is_derived_from_the_declarations(client):
    doc = json.loads(client.app[OPENAPI_DOCUMENT])  # kept as the JSON it is served as
    schemathesis.openapi.from_dict(doc).validate()
    assert "/v1/parcels/{parcel_id}/wrong" not in doc["paths"]
    accept_op = operation(doc, "post", "/v1/parcels")
    assert accept_op["tags"] == ["parcels"] and accept_op["security"] == [{"bearer": []}]
    assert accept_op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewParcel"}
    responses = accept_op["responses"]
    assert set(responses) == {"201", "400", "403", "413", "415", "422"}
    assert responses["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ParcelView"}
    for status in (400, 413, 415, 422):
        assert responses[str(status)]["description"] == JSON_BODY_ERRORS[status]
        assert PROBLEM in responses[str(status)]["content"]
    assert responses["422"]["x-problem-types"] == [BASE + "validation-failed"]
    assert responses["403"] == {
        "description": "forbidden: Forbidden",
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        "x-problem-types": [BASE + "forbidden"],
    }


def test_a_body_the_handler_reads_itself_is_documented_as_declared():
    [scan_operation] = [o for o in endpoints.operations if o.path == "/v1/parcels/{parcel_id}/scan"]
    assert (scan_operation.request_model, scan_operation.request_content_type) == (NewParcel, "image/png")


async def test_each_error_status_lists_its_refusal_types(client):
    doc = json.loads(client.app[OPENAPI_DOCUMENT])  # kept as the JSON it is served as
    responses = operation(doc, "post", "/v1/parcels/{parcel_id}/send")["responses"]
    assert set(responses) == {"200", "202", "404", "409", "503"}
    # The declared description wins; the refusal classes still name the types.
    assert responses["409"]["description"] == "sent already, or being sent"
    assert responses["409"]["x-problem-types"] == [BASE + "already-decided"]
    assert responses["404"]["description"] == "unknown-parcel: Unknown parcel"
    assert responses["503"]["x-problem-types"] == [BASE + "service-unavailable"]
    page_op = operation(doc, "get", "/parcels/page")
    assert page_op["tags"] == ["pages"] and page_op["security"] == []


def test_a_refusal_docstring_describes_it():
    group = Endpoints()

    @group.post("/x", summary="x", answers={200: Receipt}, refusals=(AlreadyDecided, Conflict))
    async def handler(request):
        return Receipt(receipt_id="r")

    [op] = group.operations
    doc = document([op], title="x", version="1")
    assert doc["paths"]["/x"]["post"]["responses"]["409"]["description"] == (
        "already-decided: the citizen has answered this request already; conflict: Conflict")


def test_mistaken_declarations_fail_at_import():
    group = Endpoints()
    with pytest.raises(TypeError, match="not a refusal class"):
        group.get("/a", summary="a", refusals=(ValueError,))
    with pytest.raises(TypeError, match="body"):
        @group.post("/b", summary="b", body=NewParcel, answers={200: Receipt})
        async def no_body(request):
            return Receipt(receipt_id="r")
    with pytest.raises(TypeError, match="caller"):
        @group.get("/c", summary="c", answers={200: Receipt})
        async def unexpected_caller(request, caller):
            return Receipt(receipt_id="r")
    with pytest.raises(ValueError, match="both an answer and a refusal"):
        @group.get("/d", summary="d", answers={200: Receipt, 404: Receipt}, refusals=(NotFound,))
        async def both(request):
            return Receipt(receipt_id="r")
    assert group.operations == ()


async def test_a_bare_model_needs_a_single_success_model():
    group = Endpoints()

    @group.get("/two", summary="two", answers={200: ParcelView, 202: Receipt, 203: {"type": "object"}})
    async def two(request):
        return Receipt(receipt_id="r")

    with pytest.raises(TypeError, match="status, model"):
        group.endpoints[0].answer(Receipt(receipt_id="r"))
    with pytest.raises(TypeError, match="does not declare"):
        group.endpoints[0].answer((201, Receipt(receipt_id="r")))
    with pytest.raises(TypeError, match="204"):
        group.endpoints[0].answer(None)
    with pytest.raises(TypeError, match="with dict, not Receipt"):
        group.endpoints[0].answer((202, {"receipt_id": "r"}))
    with pytest.raises(TypeError, match="pydantic model"):
        group.endpoints[0].answer((203, {"receipt_id": "r"}))
    assert group.endpoints[0].answer((202, Receipt(receipt_id="r"))).status == 202

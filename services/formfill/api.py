"""formfill's HTTP endpoints: each declared once with its caller, body, answers and refusals (libs/service/endpoints.py),
which also make its OpenAPI operation (merged by the gateway).

Handlers call the domain and answer its view model; refusals are raised in the
domain (errors.py, libs/consented_requests) and rendered by the service kit,
so no handler catches one.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from libs.callers import ACCESS_TOKEN_REFUSALS, DEVICE_TOKEN_REFUSALS, Device, RelyingParty, caller_of
from libs.consented_requests import CitizenUnknown, Claimed, Declined, LinkUnusable, NotAnswered, RequestExpired, RequestNotFound, UnknownClient
from libs.held_requests import HELD_FOR_THE_ANSWER, WAIT_OUT_OF_RANGE, WAIT_QUERY, WaitQuery
from libs.service import ValidationFailed, validate
from libs.service.endpoints import Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS, Body

from libs.data_export import ExportPart

from . import consents, export, formfill_requests
from .callers import device, relying_party
from .consents import ConsentList
from .context import Formfill
from .errors import ConsentNotFound, FieldNotRegistered, NotStanding, ReleaseGone
from .formfill_requests import FormfillRequestBody, RequestCreated, RequestStatus

FORMFILL = web.AppKey("formfill", Formfill)
# A relying party's request may be held on these for its citizen's answer (?wait=; libs/held_requests.py).
HELD_ROUTES = ("/v1/formfill/requests/{request_id}", "/v1/formfill/requests/{request_id}/result")
NO_STORE = {"Cache-Control": "no-store"}
RP_AUTH_ERRORS = {
    401: "no, invalid or expired access token (WWW-Authenticate: Bearer)",
    403: "the token lacks the formfill scope",
}

form_requests = Endpoints(tags=("formfill",), security=("bearer",))
receipts = Endpoints(tags=("consents",), security=("deviceToken",))
ENDPOINTS = (form_requests, receipts)


class JWKS(BaseModel):
    keys: list[dict[str, str]]

calling_relying_party = caller_of(FORMFILL, relying_party)
calling_device = caller_of(FORMFILL, device)


@form_requests.get("/v1/formfill/jwks", summary="formfill's release-signing keys (JWKS)", answers={200: JWKS}, security=(),
              headers={"Cache-Control": "max-age=60"})
async def jwks(request: web.Request) -> JWKS:
    return JWKS.model_validate(await request.app[FORMFILL].keys.jwks())


@form_requests.post(
    "/v1/formfill/requests", summary="Ask a citizen for form data (logged in: their access token; anonymous: a client-credentials token)",
    caller=calling_relying_party, body=FormfillRequestBody, exclude_unset=True,
    answers={201: RequestCreated, **RP_AUTH_ERRORS,
             403: "the token lacks formfill, or the client is not registered for a field (field-not-registered)",
             409: "the client or citizen is not known to formfill yet (Retry-After)"},
    refusals=(*ACCESS_TOKEN_REFUSALS, FieldNotRegistered, UnknownClient, CitizenUnknown),
)
async def create_request(request: web.Request, caller: RelyingParty, body: FormfillRequestBody) -> RequestCreated:
    return await formfill_requests.create(request.app[FORMFILL], caller, body)


@form_requests.get(
    "/v1/formfill/requests/{request_id}", summary="A request's status", caller=calling_relying_party, exclude_unset=True,
    answers={200: RequestStatus, **RP_AUTH_ERRORS, 404: "no such request for this client", 422: WAIT_OUT_OF_RANGE},
    refusals=(*ACCESS_TOKEN_REFUSALS, RequestNotFound, ValidationFailed), headers=NO_STORE,
    query_params=WAIT_QUERY, description=HELD_FOR_THE_ANSWER,
)
async def show_request(request: web.Request, caller: RelyingParty) -> RequestStatus:
    query = validate(WaitQuery, dict(request.query))
    return await formfill_requests.status(request.app[FORMFILL], caller, request.match_info["request_id"], wait_s=query.wait)


@form_requests.get(
    "/v1/formfill/requests/{request_id}/result",
    summary="The release, once: a JWS (application/jwt) or, with an encryption key, a JWE (application/jose)",
    caller=calling_relying_party,
    answers={200: Body("the compact JWS or JWE", "application/jwt", {"type": "string"}), **RP_AUTH_ERRORS,
             403: "access_denied: the citizen declined", 404: "no such request for this client",
             409: "not-ready: the citizen has not answered yet", 410: "already read, or expired", 422: WAIT_OUT_OF_RANGE},
    refusals=(*ACCESS_TOKEN_REFUSALS, Declined, RequestNotFound, NotAnswered, RequestExpired, ReleaseGone, ValidationFailed),
    query_params=WAIT_QUERY, description=HELD_FOR_THE_ANSWER,
)
async def take_result(request: web.Request, caller: RelyingParty) -> web.Response:
    query = validate(WaitQuery, dict(request.query))
    token, media_type = await formfill_requests.take_result(request.app[FORMFILL], caller, request.match_info["request_id"],
                                                            wait_s=query.wait)
    return web.Response(text=token, content_type=media_type, headers=NO_STORE)


@form_requests.post(
    "/v1/formfill/requests/{request_id}/claim", summary="The citizen's app opened an anonymous request's link",
    caller=calling_device, security=("deviceToken",), exclude_unset=True,
    answers={201: Claimed, **DEVICE_AUTH_ERRORS, 409: "expired, or opened by someone else"},
    refusals=(*DEVICE_TOKEN_REFUSALS, LinkUnusable),
)
async def claim_request(request: web.Request, caller: Device) -> Claimed:
    return await formfill_requests.claim(request.app[FORMFILL], caller, request.match_info["request_id"])


@receipts.get("/v1/consents", summary="The citizen's consent receipts", caller=calling_device, exclude_unset=True,
              answers={200: ConsentList, **DEVICE_AUTH_ERRORS}, refusals=DEVICE_TOKEN_REFUSALS)
async def list_consents(request: web.Request, caller: Device) -> ConsentList:
    return await consents.list_consents(request.app[FORMFILL], caller)


@receipts.delete(
    "/v1/consents/{receipt_id}", summary="Revoke a standing consent", caller=calling_device,
    answers={204: None, **DEVICE_AUTH_ERRORS, 404: "no such consent", 409: "a one-time release cannot be revoked"},
    refusals=(*DEVICE_TOKEN_REFUSALS, ConsentNotFound, NotStanding),
)
async def revoke_consent(request: web.Request, caller: Device) -> None:
    await consents.revoke(request.app[FORMFILL], caller, request.match_info["receipt_id"])


@receipts.get(
    "/v1/formfill/export", summary="formfill's part of the citizen's personal-data export (signed JWS)",
    caller=calling_device, headers=NO_STORE, answers={200: ExportPart, **DEVICE_AUTH_ERRORS}, refusals=DEVICE_TOKEN_REFUSALS,
    description="The vault record opened for its owner, consent receipts and form-fill requests, as a JWS "
                "(typ harbour-export+jwt) signed with a key of /v1/formfill/jwks (docs/api.md, personal-data export).",
)
async def export_part(request: web.Request, caller: Device) -> ExportPart:
    return await export.export(request.app[FORMFILL], caller)


OPERATIONS = tuple(operation for group in ENDPOINTS for operation in group.operations)

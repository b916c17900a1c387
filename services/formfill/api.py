"""formfill's HTTP handlers: authenticate the caller, parse, call the domain, serialise."""

from __future__ import annotations

from aiohttp import web

from libs.service import Problem, parse_body

from . import consents, formfill_requests
from .callers import device, relying_party
from .context import Formfill
from .formfill_requests import FormfillRequestBody, Refused

FORMFILL = web.AppKey("formfill", Formfill)
routes = web.RouteTableDef()


def refused(exc: Refused) -> Problem:
    headers = exc.extra.pop("headers", {})
    return Problem(str(exc), status=exc.status, title=exc.reason.replace("-", " ").replace("_", " ").capitalize(),
                   slug=exc.reason, headers=headers, **exc.extra)


@routes.get("/v1/formfill/jwks")
async def jwks(request: web.Request) -> web.Response:
    return web.json_response(await request.app[FORMFILL].keys.jwks(), headers={"Cache-Control": "max-age=60"})


@routes.post("/v1/formfill/requests")
async def create_request(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    caller = await relying_party(request, formfill.jwks, formfill.settings.issuer)
    body = await parse_body(request, FormfillRequestBody)
    try:
        return web.json_response(await formfill_requests.create(formfill, caller, body), status=201)
    except Refused as exc:
        raise refused(exc) from None


@routes.get("/v1/formfill/requests/{request_id}")
async def show_request(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    caller = await relying_party(request, formfill.jwks, formfill.settings.issuer)
    try:
        return web.json_response(await formfill_requests.status(formfill, caller, request.match_info["request_id"]), headers={"Cache-Control": "no-store"})
    except Refused as exc:
        raise refused(exc) from None


@routes.get("/v1/formfill/requests/{request_id}/result")
async def take_result(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    caller = await relying_party(request, formfill.jwks, formfill.settings.issuer)
    try:
        token, media_type = await formfill_requests.take_result(formfill, caller, request.match_info["request_id"])
    except Refused as exc:
        raise refused(exc) from None
    return web.Response(text=token, content_type=media_type, headers={"Cache-Control": "no-store"})


@routes.post("/v1/formfill/requests/{request_id}/claim")
async def claim_request(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    citizen = await device(request, formfill.jwks, formfill.settings.issuer)
    try:
        return web.json_response(await formfill_requests.claim(formfill, citizen, request.match_info["request_id"]), status=201)
    except Refused as exc:
        raise refused(exc) from None


@routes.get("/v1/consents")
async def list_consents(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    citizen = await device(request, formfill.jwks, formfill.settings.issuer)
    return web.json_response({"consents": await consents.list_consents(formfill, citizen)})


@routes.delete("/v1/consents/{receipt_id}")
async def revoke_consent(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    citizen = await device(request, formfill.jwks, formfill.settings.issuer)
    try:
        await consents.revoke(formfill, citizen, request.match_info["receipt_id"])
    except Refused as exc:
        raise refused(exc) from None
    return web.Response(status=204)

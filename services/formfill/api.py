"""formfill's HTTP handlers: authenticate the caller, parse, call the domain, serialise.

Refusals are the domain's to raise (errors.py, libs/consented_requests); the service kit renders them.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from libs.service import parse_body

from . import consents, formfill_requests
from .callers import device, relying_party
from .context import Formfill
from .formfill_requests import FormfillRequestBody

FORMFILL = web.AppKey("formfill", Formfill)
routes = web.RouteTableDef()
NO_STORE = {"Cache-Control": "no-store"}


def answer(view: BaseModel, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A view model as JSON: the fields the domain set (a field left out stays out, one set to None is null)."""
    return web.json_response(view.model_dump(mode="json", exclude_unset=True), status=status, headers=headers)


@routes.get("/v1/formfill/jwks")
async def jwks(request: web.Request) -> web.Response:
    return web.json_response(await request.app[FORMFILL].keys.jwks(), headers={"Cache-Control": "max-age=60"})


@routes.post("/v1/formfill/requests")
async def create_request(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    caller = await relying_party(request, formfill.jwks, formfill.settings.issuer)
    body = await parse_body(request, FormfillRequestBody)
    return answer(await formfill_requests.create(formfill, caller, body), status=201)


@routes.get("/v1/formfill/requests/{request_id}")
async def show_request(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    caller = await relying_party(request, formfill.jwks, formfill.settings.issuer)
    return answer(await formfill_requests.status(formfill, caller, request.match_info["request_id"]), headers=NO_STORE)


@routes.get("/v1/formfill/requests/{request_id}/result")
async def take_result(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    caller = await relying_party(request, formfill.jwks, formfill.settings.issuer)
    token, media_type = await formfill_requests.take_result(formfill, caller, request.match_info["request_id"])
    return web.Response(text=token, content_type=media_type, headers=NO_STORE)


@routes.post("/v1/formfill/requests/{request_id}/claim")
async def claim_request(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    citizen = await device(request, formfill.jwks, formfill.settings.issuer)
    return answer(await formfill_requests.claim(formfill, citizen, request.match_info["request_id"]), status=201)


@routes.get("/v1/consents")
async def list_consents(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    citizen = await device(request, formfill.jwks, formfill.settings.issuer)
    return answer(await consents.list_consents(formfill, citizen))


@routes.delete("/v1/consents/{receipt_id}")
async def revoke_consent(request: web.Request) -> web.Response:
    formfill = request.app[FORMFILL]
    citizen = await device(request, formfill.jwks, formfill.settings.issuer)
    await consents.revoke(formfill, citizen, request.match_info["receipt_id"])
    return web.Response(status=204)

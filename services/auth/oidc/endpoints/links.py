"""The citizen's app opened a login link (harbourid:// or the https app link, the QR code's with its time code):
its prompt joins the citizen's queue.

A device API (problem+json refusals) under /v1/approvals, served by the main application.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from libs.service.endpoints import Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS

from ...callers import AUTH, DEVICE_REFUSALS, current_device
from ...devices.tokens import DeviceContext
from ...views import Prompt
from .. import login
from ..errors import AssuranceTooLow, LinkUnusable, LoginForAnotherCitizen, QrCodeExpired, QrCodeForged, UnknownLink

endpoints = Endpoints(tags=("approvals",), security=("deviceToken",))


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    link: str = Field(min_length=10, max_length=500)


@endpoints.post(
    "/v1/approvals/links", summary="Open a login link (harbourid:// or {issuer}/app/authorize): queue its prompt for this citizen",
    caller=current_device, body=LinkRequest,
    answers={201: Prompt,
             400: "malformed body, not a Harbour ID login link, or qr-code-invalid (a QR link whose time code auth did not make)",
             410: "qr-code-expired: a QR link drawn more than the QR window (HARBOUR_AUTH_QR_WINDOW_S) ago",
             401: DEVICE_AUTH_ERRORS[401],
             403: "account-inactive, assurance-too-low for the client's acr_values, or login-for-another-citizen "
                  "(the client named the citizen who may approve: login_hint, id_token_hint)",
             409: "link-unusable: the login has expired or belongs to someone else"},
    refusals=(*DEVICE_REFUSALS, UnknownLink, QrCodeForged, QrCodeExpired, AssuranceTooLow, LoginForAnotherCitizen,
              LinkUnusable),
)
async def open_link(request: web.Request, caller: DeviceContext, body: LinkRequest) -> web.Response:
    return web.json_response(await login.claim(request.app[AUTH], caller.account_id, body.link, assurance=caller.assurance,
                                               device_id=caller.device_id), status=201)

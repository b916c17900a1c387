"""The citizen's own account over HTTP: asking to close it (the phone then approves the prompt, identity/closure.py)."""

from __future__ import annotations

from aiohttp import web

from libs.service.endpoints import Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS

from ..callers import AUTH, DEVICE_REFUSALS, current_device
from ..devices.tokens import DeviceContext
from ..errors import AccountInactive
from ..identity import closure
from ..views import ClosureRequested

endpoints = Endpoints(tags=("account",), security=("deviceToken",))


@endpoints.post(
    "/v1/account/closure", summary="Ask to close the account for good: a prompt the phone must approve, device-signed",
    caller=current_device,
    answers={202: ClosureRequested, **DEVICE_AUTH_ERRORS, 403: "account-inactive: the account is not active"},
    refusals=(*DEVICE_REFUSALS, AccountInactive),
    description="Nothing changes until a device of the account approves the returned prompt "
                "(POST /v1/approvals/{approval_id}/decision); the approval closes the account at once (docs/api.md).",
)
async def request_closure(request: web.Request, caller: DeviceContext) -> web.Response:
    return web.json_response(await closure.request_closure(request.app[AUTH], caller), status=202)

"""The citizen's personal-data export, auth's part (services/auth/export.py, libs/data_export.py)."""

from __future__ import annotations

from aiohttp import web

from libs.data_export import ExportPart
from libs.service.endpoints import Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS

from .. import export
from ..callers import AUTH, DEVICE_REFUSALS, current_device
from ..devices.tokens import DeviceContext

endpoints = Endpoints(tags=("account",), security=("deviceToken",))


@endpoints.get(
    "/v1/account/export", summary="auth's part of the citizen's personal-data export (signed JWS)",
    caller=current_device, headers={"Cache-Control": "no-store"},
    answers={200: ExportPart, **DEVICE_AUTH_ERRORS, 403: "account-inactive: the account is not active"},
    refusals=DEVICE_REFUSALS,
    description="The account, devices, pairwise subjects, grants, sessions and prompts of the calling device's "
                "account, as a JWS (typ harbour-export+jwt) signed with a key of /oidc/jwks; the app gathers it with "
                "formfill's, notify's and signing's parts (docs/api.md, personal-data export).",
)
async def export_part(request: web.Request, caller: DeviceContext) -> ExportPart:
    return await export.export(request.app[AUTH], caller)

"""The citizen's own profile over HTTP: changing phone, e-mail (confirmed by a one-time code) or address (profile/)."""

from __future__ import annotations

from aiohttp import web

from libs.service.endpoints import Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS

from ..callers import AUTH, DEVICE_REFUSALS, current_device
from ..devices.tokens import DeviceContext
from ..profile import changes
from ..profile.changes import ConfirmationBody, ProfileChange, ProfileChangeBody
from ..profile.errors import ChangeDone, CodeExpired, CodeLocked, InvalidCode, NoSuchChange, TooManyChanges

endpoints = Endpoints(tags=("profile",), security=("deviceToken",))


@endpoints.post(
    "/v1/profile/changes", summary="Change phone, e-mail (a one-time code goes to the new one) or address (self-declared)",
    caller=current_device, body=ProfileChangeBody, exclude_none=True,
    answers={202: ProfileChange, **DEVICE_AUTH_ERRORS, 429: "too-many-changes: at most 5 an hour (Retry-After)"},
    refusals=(*DEVICE_REFUSALS, TooManyChanges),
    description="phone and email: nothing changes until the code sent to the new address is confirmed "
                "(POST /v1/profile/changes/{change_id}/confirmation); address: applied at once, self-declared (docs/api.md).",
)
async def request_change(request: web.Request, caller: DeviceContext, body: ProfileChangeBody) -> tuple[int, ProfileChange]:
    return 202, await changes.request_change(request.app[AUTH], caller, body)


@endpoints.post(
    "/v1/profile/changes/{change_id}/confirmation", summary="Confirm a phone or e-mail change with its one-time code",
    caller=current_device, body=ConfirmationBody, exclude_none=True,
    answers={200: ProfileChange, **DEVICE_AUTH_ERRORS, 400: "invalid-code (with attempts_left)",
             403: "code-locked after 5 wrong codes (or account-inactive)", 404: "no-such-change", 409: "change-done",
             410: "code-expired"},
    refusals=(*DEVICE_REFUSALS, InvalidCode, CodeLocked, NoSuchChange, ChangeDone, CodeExpired),
)
async def confirm_change(request: web.Request, caller: DeviceContext, body: ConfirmationBody) -> ProfileChange:
    return await changes.confirm_change(request.app[AUTH], caller, request.match_info["change_id"], body)

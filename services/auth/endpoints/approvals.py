"""The citizen's approvals over HTTP: the pending prompts, one prompt, and the device-signed decision.

Opening a login link (POST /v1/approvals/links) belongs to the OpenID Connect
provider: oidc/endpoints/links.py.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from libs.service.endpoints import Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS

from ..approvals import decisions, queue
from ..callers import AUTH, DEVICE_REFUSALS, current_device
from ..devices.passkeys import PasskeyAssertion
from ..devices.tokens import DeviceContext
from ..errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalUnreadable,
    BadSignature,
    ClonedAuthenticator,
    DigestMismatch,
    MalformedDecision,
    NoSuchApproval,
    UserVerificationRequired,
    WrongApproval,
    WrongDevice,
)
from ..views import DecisionRecorded, Prompt, PromptList

endpoints = Endpoints(tags=("approvals",), security=("deviceToken",))


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: str = Field(min_length=10, max_length=8192, description="compact JWS signed by the device key")
    passkey: PasskeyAssertion | None = Field(
        default=None, description="a passkey device's approval: the WebAuthn assertion (PublicKeyCredential.toJSON()) "
                                  "whose challenge is the prompt's digest, base64url-decoded, with user verification")


@endpoints.get("/v1/approvals", summary="The pending prompts of the account, soonest expiry first", caller=current_device,
               answers={200: PromptList, **DEVICE_AUTH_ERRORS}, refusals=DEVICE_REFUSALS)
async def list_pending(request: web.Request, caller: DeviceContext) -> web.Response:
    return web.json_response({"approvals": await queue.pending_prompts(request.app[AUTH], caller.account_id)})


@endpoints.get("/v1/approvals/{approval_id}", summary="One prompt of the account, any status", caller=current_device,
               answers={200: Prompt, **DEVICE_AUTH_ERRORS, 404: "not this account's prompt",
                        410: "the prompt can no longer be shown (its key left the KEK ring)"},
               refusals=(*DEVICE_REFUSALS, NoSuchApproval, ApprovalUnreadable))
async def show(request: web.Request, caller: DeviceContext) -> web.Response:
    return web.json_response(await queue.get_prompt(request.app[AUTH], caller.account_id, request.match_info["approval_id"]))


@endpoints.post(
    "/v1/approvals/{approval_id}/decision", summary="Approve or deny a prompt with a device-signed decision",
    caller=current_device, body=DecisionRequest,
    answers={200: DecisionRecorded, 401: DEVICE_AUTH_ERRORS[401],
             400: "malformed body or decision",
             403: "account-inactive, wrong-device, bad-signature, digest-mismatch, wrong-approval, assurance-too-low, "
                  "user-verification-required (a passkey device's approval without an assertion that verifies) or "
                  "cloned-authenticator (its sign count did not grow)",
             404: "not this account's prompt",
             409: "already-decided (a replay too)",
             410: "the prompt has expired"},
    refusals=(*DEVICE_REFUSALS, MalformedDecision, WrongDevice, BadSignature, DigestMismatch, WrongApproval, NoSuchApproval,
              AlreadyDecided, ApprovalExpired, ApprovalUnreadable, UserVerificationRequired, ClonedAuthenticator),
)
async def decide(request: web.Request, caller: DeviceContext, body: DecisionRequest) -> web.Response:
    auth = request.app[AUTH]
    approval_id = request.match_info["approval_id"]
    result = await auth.transaction(
        lambda session: decisions.decide(auth, session, caller, approval_id, body.decision, passkey=body.passkey))
    return web.json_response(result)

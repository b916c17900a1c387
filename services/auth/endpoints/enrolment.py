"""Enrolling a citizen over HTTP: a kiosk proofs in person (`plus`); in the sandbox a citizen self-registers (`basic`)."""

from __future__ import annotations

from aiohttp import web

from libs.callers import ClientCredentialsRequired
from libs.service.endpoints import NO_STORE, Endpoints

from ..callers import AUTH, enroller
from ..errors import DuplicateEnrolment, MayNotEnrol, ProofingFailed, SelfieRefused
from ..identity.enrolment import EnrolmentRequest, enrol_citizen
from ..views import EnrolmentCreated

endpoints = Endpoints(tags=("enrolment",), security=("kioskBasic",))


@endpoints.post(
    "/v1/enrolments", summary="Enrol a citizen (kiosk: assurance plus; sandbox self-registration: basic)",
    caller=enroller, body=EnrolmentRequest,
    answers={201: EnrolmentCreated,
             401: "wrong kiosk credentials, or none outside the sandbox (WWW-Authenticate: Basic)",
             403: "insufficient-scope: the client is not a kiosk with the enrol scope",
             409: "duplicate-enrolment: the card number is already enrolled",
             413: "the body is above 4 MiB",
             422: "validation-failed (`errors` names each field), selfie-rejected or proofing-failed"},
    refusals=(ClientCredentialsRequired, MayNotEnrol, DuplicateEnrolment, SelfieRefused, ProofingFailed),
    security_optional=True,
)
async def enrol(request: web.Request, caller: tuple[str, str], body: EnrolmentRequest) -> web.Response:
    actor, assurance = caller
    auth = request.app[AUTH]
    result = await enrol_citizen(auth, auth.matcher, body, actor=actor, assurance=assurance)
    return web.json_response(result, status=201, headers=NO_STORE)

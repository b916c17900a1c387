"""Enrolling a citizen over HTTP: a kiosk proofs in person (`plus`); in the sandbox a citizen self-registers (`basic`).

A kiosk also proofs an enrolled citizen again (identity/reproofing.py): to replace a lost phone (a new activation
code, every old device revoked) or to upgrade a `basic` account to `plus` (devices kept). In the sandbox a test
citizen recovers from a lost phone without a kiosk (`/v1/enrolments/recovery`; refused in production).
"""

from __future__ import annotations

from aiohttp import web

from libs.callers import ClientCredentialsRequired
from libs.service.endpoints import NO_STORE, Endpoints

from ..callers import AUTH, enroller
from ..errors import AccountInactive, DuplicateEnrolment, MayNotEnrol, NotEnrolled, ProofingFailed, SandboxOnly, SelfieRefused
from ..identity.enrolment import EnrolmentRequest, enrol_citizen
from ..identity.reproofing import recover_phone, replace_phone, upgrade_assurance
from ..views import AssuranceUpgraded, EnrolmentCreated, PhoneRecovered, PhoneReplaced

endpoints = Endpoints(tags=("enrolment",), security=("kioskBasic",))

KIOSK_ANSWERS = {
    401: "wrong or no kiosk credentials (WWW-Authenticate: Basic); the sandbox's self-registration does not apply",
    403: "insufficient-scope: the client is not a kiosk with the enrol scope; account-inactive: the account is suspended or revoked",
    404: "not-enrolled: no account has this card number (told only after the selfie passed)",
    413: "the body is above 4 MiB",
    422: "validation-failed (`errors` names each field), selfie-rejected or proofing-failed (the selfie, or the "
         "card-printed data differs from the enrolment's)",
}
KIOSK_REFUSALS = (ClientCredentialsRequired, MayNotEnrol, AccountInactive, NotEnrolled, SelfieRefused, ProofingFailed)


async def kiosk(request: web.Request) -> str:
    """A kiosk with scope `enrol`, also in the sandbox (proofing an existing account is never self-service)."""
    if request.headers.get("Authorization") is None:
        raise ClientCredentialsRequired("kiosk client credentials are required")
    actor, _assurance = await enroller(request)
    return actor


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


@endpoints.post(
    "/v1/enrolments/replacements",
    summary="Replace a lost phone (kiosk): proofing again, every device revoked, a new activation code for the same account",
    caller=kiosk, body=EnrolmentRequest, answers={201: PhoneReplaced, **KIOSK_ANSWERS}, refusals=KIOSK_REFUSALS,
)
async def replace(request: web.Request, caller: str, body: EnrolmentRequest) -> web.Response:
    auth = request.app[AUTH]
    return web.json_response(await replace_phone(auth, auth.matcher, body, actor=caller), status=201, headers=NO_STORE)


async def sandbox_citizen(request: web.Request) -> str:
    """Anyone, in the sandbox only (test citizens recover without a kiosk); production answers 403 sandbox-only."""
    if not request.app[AUTH].settings.sandbox:
        raise SandboxOnly("self-service recovery exists only in the sandbox; replace a lost phone at a kiosk")
    return "sandbox-recovery"


@endpoints.post(
    "/v1/enrolments/recovery",
    summary="Sandbox only: a test citizen who lost their phone gets a new activation code without a kiosk",
    caller=sandbox_citizen, body=EnrolmentRequest, security=(),
    answers={201: PhoneRecovered,
             403: "sandbox-only: not in production (a kiosk replaces a lost phone there); account-inactive",
             404: "not-enrolled: no account has this card number (told only after the selfie passed)",
             413: "the body is above 4 MiB",
             422: "validation-failed, selfie-rejected or proofing-failed (the card-printed data differs from the enrolment's)"},
    refusals=(SandboxOnly, AccountInactive, NotEnrolled, SelfieRefused, ProofingFailed),
    description="The same identity data and selfie as self-registration: the kiosk replacement's proofing and "
                "effects (every device revoked and alerted, sessions ended, a new activation code), the assurance "
                "unchanged (docs/api.md).",
)
async def recover(request: web.Request, caller: str, body: EnrolmentRequest) -> web.Response:
    auth = request.app[AUTH]
    return web.json_response(await recover_phone(auth, auth.matcher, body), status=201, headers=NO_STORE)


@endpoints.post(
    "/v1/enrolments/upgrades",
    summary="Upgrade a basic account to plus (kiosk): proofing in person; devices, subjects and consents stay",
    caller=kiosk, body=EnrolmentRequest, answers={200: AssuranceUpgraded, **KIOSK_ANSWERS}, refusals=KIOSK_REFUSALS,
)
async def upgrade(request: web.Request, caller: str, body: EnrolmentRequest) -> web.Response:
    auth = request.app[AUTH]
    return web.json_response(await upgrade_assurance(auth, auth.matcher, body, actor=caller), headers=NO_STORE)

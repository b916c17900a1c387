"""signing's HTTP endpoints: each declared once with its caller, answers and refusals (libs/service/endpoints.py),
which also make its OpenAPI operation (merged by the gateway).

Handlers parse what the endpoint takes (a hash as JSON, a PDF as such or in
multipart, a CMS or a PDF to verify, a DER timestamp query), call the domain
and answer its view model; refusals are raised in the domain (errors.py,
parsing.py, libs/consented_requests) and rendered by the service kit, so no
handler catches one.
"""

from __future__ import annotations

import hashlib

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field

from libs import callers
from libs.callers import ACCESS_TOKEN_REFUSALS, DEVICE_TOKEN_REFUSALS, Device, RelyingParty, caller_of
from libs.consented_requests import CitizenUnknown, Claimed, Declined, LinkUnusable, NotAnswered, RequestExpired, RequestNotFound, UnknownClient
from libs.held_requests import HELD_FOR_THE_ANSWER, WAIT_OUT_OF_RANGE, WAIT_QUERY, WaitQuery
from libs.service import MalformedBody, ValidationFailed, parse_body, validate
from libs.service.endpoints import BODY_REFUSALS, NO_STORE, Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS, JSON_BODY_ERRORS, Body
from libs.service.problems import PayloadTooLarge, UnsupportedMediaType

from libs.data_export import ExportPart
from libs.tokens.keystore import KeyStore

from . import export, ocsp, parsing, signing_requests
from .callers import device, relying_party
from .context import Signing
from .ledger import tracker
from .errors import (
    CLOSED_BECAUSE,
    AppearanceNotOnPage,
    AssuranceTooLow,
    IdentityNotActive,
    NotSignablePdf,
    NotVerifiable,
    ParsersBusy,
    ResultExpired,
)
from .signing_requests import DocumentQuery, NewDocument, RequestCreated, RequestStatus, SignHashBody
from .tsa import parse_query, rejection
from .reports import VerificationReport, VerifyCmsBody
from .x509 import pem

SIGNING = web.AppKey("signing", Signing)
# A relying party's request may be held on these for its citizen's answer (?wait=; libs/held_requests.py).
HELD_ROUTES = ("/v1/signing/requests/{request_id}", "/v1/signing/requests/{request_id}/result")
EXPORT_KEYS = web.AppKey("signing_export_keys", KeyStore)  # app.py: the keys of the citizen's export part
BINARY = {"type": "string", "format": "binary"}
ACTIVITY_SCOPE = "activity"  # a relying party's client-credentials token reading the tracker about its own users
ACTIVITY_AUTH_ERRORS = {
    401: "no, invalid or expired access token (WWW-Authenticate: Bearer)",
    403: "the token lacks the activity scope",
}
RP_AUTH_ERRORS = {
    401: "no, invalid or expired access token (WWW-Authenticate: Bearer)",
    403: "the token lacks the sign scope",
}
DOCUMENT_QUERY = (
    ("document_name", {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00-\x1f\x7f]+$"}, False),
    ("purpose", {"type": "string", "minLength": 1, "maxLength": 300}, False),
    ("appearance", {"type": "string", "maxLength": 400, "description":
                    'a visible signature, as JSON: {"page": 1, "box": [x1, y1, x2, y2] (PDF points), "name"?: shown}'}, False),
)

authority = Endpoints(tags=("signing",))
sign_requests = Endpoints(tags=("signing",), security=("bearer",))
activity = Endpoints(tags=("activity",))
ENDPOINTS = (authority, sign_requests, activity)

calling_relying_party = caller_of(SIGNING, relying_party)
calling_device = caller_of(SIGNING, device)
calling_activity_reader = caller_of(SIGNING, callers.relying_party, scope=ACTIVITY_SCOPE)


# -- the platform's CA, its CRLs, its TSA, and verification: public -------------------------


@authority.get("/v1/signing/ca", summary="The CA chain (PEM): the issuing CA, then the root to trust",
               answers={200: Body("PEM certificates", "application/pem-certificate-chain", {"type": "string"})})
async def ca_chain(request: web.Request) -> web.Response:
    chain = request.app[SIGNING].authority
    # The issuing CA first, then the root (RFC 5246 order, and what `openssl verify -untrusted` wants).
    return web.Response(text=pem(chain.issuing) + pem(chain.root), content_type="application/pem-certificate-chain",
                        headers={"Cache-Control": "max-age=3600"})


@authority.get("/v1/signing/crl", summary="The issuing CA's certificate revocation list (DER)",
               answers={200: Body("a DER X.509 CRL", "application/pkix-crl", BINARY)})
async def crl(request: web.Request) -> web.Response:
    return web.Response(body=await request.app[SIGNING].crl(), content_type="application/pkix-crl",
                        headers={"Cache-Control": "max-age=60"})


@authority.get("/v1/signing/crl/root", summary="The root CA's certificate revocation list (DER): covers the issuing CA",
               answers={200: Body("a DER X.509 CRL", "application/pkix-crl", BINARY)})
async def root_crl(request: web.Request) -> web.Response:
    return web.Response(body=await request.app[SIGNING].root_crl(), content_type="application/pkix-crl",
                        headers={"Cache-Control": "max-age=3600"})


OCSP_REPLY = {200: Body("a DER OCSPResponse (RFC 6960): successful with good, revoked (time, reason) or unknown per certificate, "
                        "signed by the issuing CA; malformedRequest for a body that is no DER OCSPRequest; unauthorized when "
                        "no certificate of the issuing CA is asked about", "application/ocsp-response", BINARY)}


@authority.post(
    "/v1/signing/ocsp", summary="OCSP responder (RFC 6960) for the issuing CA's certificates: a DER OCSPRequest",
    request_model=BINARY, request_content_type="application/ocsp-request",
    answers={**OCSP_REPLY, 413: "the body is too large", 415: "not application/ocsp-request"}, refusals=(UnsupportedMediaType,),
)
async def ocsp_post(request: web.Request) -> web.Response:
    if request.content_type != "application/ocsp-request":
        raise UnsupportedMediaType(f"expected application/ocsp-request (RFC 6960), got {request.content_type or 'nothing'}")
    return await _ocsp_reply(request, await request.read(), NO_STORE)


@authority.get("/v1/signing/ocsp/{ocsp_request}",
               summary="OCSP responder (RFC 6960 A.1): the DER OCSPRequest base64- then URL-encoded in the path",
               answers=OCSP_REPLY)
async def ocsp_get(request: web.Request) -> web.Response:
    # The raw path: a base64 '/' arrives as %2F, and the router must not have split on it.
    der = ocsp.from_get_path(request.raw_path.split("?", 1)[0][len(ocsp.OCSP_PATH):])
    return await _ocsp_reply(request, der, {"Cache-Control": "max-age=60"})


async def _ocsp_reply(request: web.Request, der: bytes | None, headers: dict[str, str]) -> web.Response:
    signing = request.app[SIGNING]
    reply = await ocsp.respond(signing.authority, signing.db, der, now=signing.clock.now())
    return web.Response(body=reply, content_type="application/ocsp-response", headers=headers)


@authority.post(
    "/v1/signing/tsa", summary="RFC 3161 timestamp authority: a DER TimeStampReq (application/timestamp-query)",
    request_model=BINARY, request_content_type="application/timestamp-query",
    answers={200: Body("a DER TimeStampResp: granted, or status rejection with its failInfo (badAlg, badRequest, "
                       "badDataFormat — also for a body that is no DER TimeStampReq —, unacceptedPolicy, unacceptedExtension)",
                       "application/timestamp-reply", BINARY),
             413: "the body is too large", 415: "not application/timestamp-query"},
    refusals=(UnsupportedMediaType,),
)
async def timestamp(request: web.Request) -> web.Response:
    if request.content_type != "application/timestamp-query":
        raise UnsupportedMediaType(f"expected application/timestamp-query (RFC 3161), got {request.content_type or 'nothing'}")
    query = parse_query(await request.read())
    # RFC 3161 §3.4: every answer to a query is a TimeStampResp; a refusal is status rejection with its failInfo.
    if query is None:
        reply = rejection("bad_data_format", "the body is not a DER-encoded TimeStampReq")
    else:
        reply = await request.app[SIGNING].tsa.respond(query)
    return web.Response(body=reply.dump(), content_type="application/timestamp-reply", headers=NO_STORE)


@authority.post(
    "/v1/signing/verify",
    summary="Verify a detached CMS (JSON: cms + sha256 or content) or a signed PDF (application/pdf): signer, chain, time, integrity, revocation",
    request_model=VerifyCmsBody, headers=NO_STORE,
    answers={200: VerificationReport, **JSON_BODY_ERRORS,
             415: "not application/json or application/pdf",
             422: "the body does not match the model, or it is no signature we can read (unverifiable; also when parsing it "
                  "exceeds the sandbox's CPU, memory or wall-clock limit)",
             503: "every parsing worker stayed busy (Retry-After)"},
    refusals=(*BODY_REFUSALS, NotVerifiable, ParsersBusy),
)
async def verify(request: web.Request) -> VerificationReport:
    signing = request.app[SIGNING]
    if request.content_type == "application/pdf":
        document: bytes | VerifyCmsBody = await request.read()
        if len(document) > signing.settings.max_pdf_bytes:
            raise PayloadTooLarge(f"the PDF is larger than {signing.settings.max_pdf_bytes} bytes")
    else:
        document = await parse_body(request, VerifyCmsBody)
    return await parsing.verification_report(signing, document)


# -- signing requests: relying parties, and the citizen's app opening a link --------------------


async def _document(request: web.Request, max_pdf: int) -> NewDocument:
    """A hash (JSON) or a PDF (application/pdf with ?document_name=, or multipart: document_name + document)."""
    query = validate(DocumentQuery, dict(request.query))
    if request.content_type == "application/json":
        body = await parse_body(request, SignHashBody)
        return validate(NewDocument, {"kind": "cms", "document_name": body.document_name, "sha256": body.sha256,
                                      "purpose": body.purpose, "appearance": query.appearance})
    appearance = query.appearance
    if request.content_type == "application/pdf":
        name, purpose, pdf = query.document_name, query.purpose, await request.read()
    elif request.content_type == "multipart/form-data":
        name, purpose, pdf, raw_appearance = await _multipart(request, max_pdf)
        if raw_appearance is not None:
            appearance = validate(DocumentQuery, {"appearance": raw_appearance}).appearance
    else:
        raise UnsupportedMediaType("send application/json (a hash), application/pdf or multipart/form-data (a PDF)")
    if len(pdf) > max_pdf:
        raise PayloadTooLarge(f"the PDF is larger than {max_pdf} bytes")
    # The appearance's page and box are checked against the PDF in the sandbox, before anything is stored.
    pages = await parsing.check_upload(request.app[SIGNING], pdf, None if appearance is None else appearance.model_dump())
    return validate(NewDocument, {"kind": "pdf", "document_name": name or "", "purpose": purpose or None,
                                  "sha256": hashlib.sha256(pdf).hexdigest(), "pages": pages, "pdf": pdf, "appearance": appearance})


async def _multipart(request: web.Request, max_pdf: int) -> tuple[str | None, str | None, bytes, str | None]:
    name = purpose = appearance = None
    pdf = b""
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "document":
                pdf = await part.read(decode=True)
                name = name or part.filename
            elif part.name in ("document_name", "purpose"):
                value = (await part.read(decode=True)).decode("utf-8", errors="strict")
                name, purpose = (value, purpose) if part.name == "document_name" else (name, value)
            elif part.name == "appearance":
                appearance = (await part.read(decode=True)).decode("utf-8", errors="strict")
            if len(pdf) > max_pdf:
                raise PayloadTooLarge(f"the PDF is larger than {max_pdf} bytes")
    except (ValueError, UnicodeDecodeError, AssertionError):
        raise MalformedBody("the multipart body is malformed") from None
    if not pdf:
        raise MalformedBody("the multipart body has no `document` part")
    return name, purpose, pdf, appearance




@sign_requests.post(
    "/v1/signing/requests",
    summary="Ask a citizen to sign: a SHA-256 and a document name (JSON) → detached CMS; or a PDF (application/pdf with "
            "?document_name=, or multipart/form-data with `document` and `document_name`; `appearance` for a visible "
            "signature) → PAdES signed PDF",
    caller=calling_relying_party, request_model=SignHashBody, query_params=DOCUMENT_QUERY, exclude_unset=True,
    description="Logged in: the citizen's access token (scope sign), and the citizen gets the prompt at once. Anonymous: a "
                "client-credentials token; the answer carries `app_link` (harbourid://sign?request=…) for the QR code.",
    answers={201: RequestCreated, **JSON_BODY_ERRORS, **RP_AUTH_ERRORS,
             403: "the token lacks sign, or the citizen may not sign (assurance-too-low: only plus identities; identity-not-active)",
             409: "the client or citizen is not known to signing yet (Retry-After)",
             415: "not application/json, application/pdf or multipart/form-data",
             400: "a malformed body",
             422: "the body or query does not match the model (unknown query parameters included; an appearance with a hash), or the "
                  "upload is not a signable PDF (invalid-pdf; also when parsing it exceeds the sandbox's CPU, memory or wall-clock "
                  "limit), or the appearance's page is not in the PDF or its box not inside that page (invalid-appearance)",
             503: "every PDF parsing worker stayed busy (Retry-After)"},
    refusals=(*ACCESS_TOKEN_REFUSALS, *BODY_REFUSALS, AssuranceTooLow, IdentityNotActive, UnknownClient, CitizenUnknown, NotSignablePdf,
              AppearanceNotOnPage, ParsersBusy),
)
async def create_request(request: web.Request, caller: RelyingParty) -> RequestCreated:
    signing = request.app[SIGNING]
    new = await _document(request, signing.settings.max_pdf_bytes)
    return await signing_requests.create(signing, caller, new)


@sign_requests.get(
    "/v1/signing/requests/{request_id}", summary="A signing request's status", caller=calling_relying_party,
    answers={200: RequestStatus, **RP_AUTH_ERRORS, 404: "no such request for this client", 422: WAIT_OUT_OF_RANGE},
    refusals=(*ACCESS_TOKEN_REFUSALS, RequestNotFound, ValidationFailed), headers=NO_STORE, exclude_unset=True,
    query_params=WAIT_QUERY, description=HELD_FOR_THE_ANSWER,
)
async def show_request(request: web.Request, caller: RelyingParty) -> RequestStatus:
    query = validate(WaitQuery, dict(request.query))
    return await signing_requests.status(request.app[SIGNING], caller, request.match_info["request_id"], wait_s=query.wait)


@sign_requests.get(
    "/v1/signing/requests/{request_id}/result",
    summary="The detached CMS (application/pkcs7-signature, DER) or the signed PDF (application/pdf), until the result expires",
    caller=calling_relying_party,
    answers={200: Body("the CMS signature or the signed PDF", "application/pkcs7-signature", BINARY), **RP_AUTH_ERRORS,
             403: "access_denied: the citizen declined; or the citizen may not sign", 404: "no such request for this client",
             409: "not-ready: the citizen has not answered yet", 410: "expired", 422: WAIT_OUT_OF_RANGE},
    refusals=(*ACCESS_TOKEN_REFUSALS, Declined, *CLOSED_BECAUSE.values(), RequestNotFound, NotAnswered, RequestExpired, ResultExpired,
              ValidationFailed),
    query_params=WAIT_QUERY, description=HELD_FOR_THE_ANSWER,
)
async def take_result(request: web.Request, caller: RelyingParty) -> web.Response:
    request_id = request.match_info["request_id"]
    query = validate(WaitQuery, dict(request.query))
    body, media_type = await signing_requests.take_result(request.app[SIGNING], caller, request_id, wait_s=query.wait)
    extension = "pdf" if media_type == "application/pdf" else "p7s"
    return web.Response(body=body, content_type=media_type, headers={
        **NO_STORE, "Content-Disposition": f'attachment; filename="signed-{request_id}.{extension}"'})


@sign_requests.post(
    "/v1/signing/requests/{request_id}/claim", summary="The citizen's app opened an anonymous signing request's link",
    caller=calling_device, security=("deviceToken",), exclude_unset=True,
    answers={201: Claimed, **DEVICE_AUTH_ERRORS, 403: "this citizen may not sign (assurance-too-low, identity-not-active)",
             409: "link-unusable: expired, or opened by someone else; citizen-unknown (Retry-After): signing has not heard "
                  "of this citizen, or of their activation, yet — nothing changed, claim again"},
    refusals=(*DEVICE_TOKEN_REFUSALS, AssuranceTooLow, IdentityNotActive, LinkUnusable, CitizenUnknown),
)
async def claim_request(request: web.Request, caller: Device) -> Claimed:
    return await signing_requests.claim(request.app[SIGNING], caller, request.match_info["request_id"])


class JWKS(BaseModel):
    keys: list[dict[str, str]]


@authority.get("/v1/signing/jwks", summary="The keys that sign signing's part of a citizen's data export (JWKS)",
               answers={200: JWKS}, headers={"Cache-Control": "max-age=60"})
async def jwks(request: web.Request) -> JWKS:
    return JWKS.model_validate(await request.app[EXPORT_KEYS].jwks())


@sign_requests.get(
    "/v1/signing/export", summary="signing's part of the citizen's personal-data export (signed JWS)",
    caller=calling_device, security=("deviceToken",), headers=NO_STORE,
    answers={200: ExportPart, **DEVICE_AUTH_ERRORS}, refusals=DEVICE_TOKEN_REFUSALS,
    description="The citizen's certificates and signing requests, as a JWS (typ harbour-export+jwt) signed with a key "
                "of /v1/signing/jwks (docs/api.md, personal-data export).",
)
async def export_part(request: web.Request, caller: Device) -> ExportPart:
    return await export.export(request.app[SIGNING], request.app[EXPORT_KEYS], caller)


# -- the data tracker: every use of the citizen's identity, from the audit ledger (ledger/tracker.py) ----------

PAGE_QUERY = (("after", {"type": "integer", "minimum": 0}, False),
              ("limit", {"type": "integer", "minimum": 1, "maximum": 100}, False))


class ActivityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: int = Field(0, ge=0, le=2**62)
    limit: int = Field(50, ge=1, le=100)


@activity.get(
    "/v1/activity", summary="The citizen's data tracker: every use of their identity, each entry with its proof",
    caller=calling_device, security=("deviceToken",), headers=NO_STORE, query_params=PAGE_QUERY,
    answers={200: tracker.ActivityPage, **DEVICE_AUTH_ERRORS, 422: "after or limit out of range, or another parameter"},
    refusals=(*DEVICE_TOKEN_REFUSALS, ValidationFailed),
    description="Logins, releases, consents, signatures, notifications, device changes and operator actions about "
                "the citizen, oldest first after the ledger sequence number `after`; each with the record's seq, leaf "
                "and chain hashes and the signed checkpoint that covers it (docs/api.md, data tracker).",
)
async def citizen_activity(request: web.Request, caller: Device) -> tracker.ActivityPage:
    query = validate(ActivityQuery, dict(request.query))
    signing = request.app[SIGNING]
    return await tracker.citizen_activity(signing.db, caller.account_id, after=query.after, limit=query.limit,
                                          document_names=lambda request_id, account_id: signing_requests.document_name(
                                              signing, request_id, account_id))


@activity.get(
    "/v1/activity/subjects/{sub}", summary="A relying party's view of the tracker: what one of its users did with it",
    caller=calling_activity_reader, security=("bearer",), headers=NO_STORE, query_params=PAGE_QUERY,
    answers={200: tracker.ActivityPage, **ACTIVITY_AUTH_ERRORS, 404: "no user of this relying party has this sub",
             422: "after or limit out of range"},
    refusals=(*ACCESS_TOKEN_REFUSALS, tracker.UnknownSubject, ValidationFailed),
    description="A client-credentials token with the `activity` scope: the entries naming this client about the "
                "citizen its pairwise `sub` names, without account or device ids (docs/api.md, data tracker).",
)
async def relying_party_activity(request: web.Request, caller: RelyingParty) -> tracker.ActivityPage:
    query = validate(ActivityQuery, dict(request.query))
    return await tracker.relying_party_activity(request.app[SIGNING].db, caller.client_id, request.match_info["sub"],
                                                after=query.after, limit=query.limit)


OPERATIONS = tuple(operation for group in ENDPOINTS for operation in group.operations)

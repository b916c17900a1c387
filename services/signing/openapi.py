"""signing's public operations, declared from the models its handlers validate with (merged by the gateway)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from libs.consented_requests import Claimed
from libs.service.openapi import DEVICE_AUTH_ERRORS, JSON_BODY_ERRORS, Body, Operation

from .signing_requests import RequestCreated, RequestStatus, SignHashBody
from .verify import VerifyCmsBody

RP_AUTH_ERRORS = {
    401: "no, invalid or expired access token (WWW-Authenticate: Bearer)",
    403: "the token lacks the sign scope",
}
BINARY = {"type": "string", "format": "binary"}


class VerificationReport(BaseModel):
    """Per signature: signer, chain (trusted only if it reaches our root), integrity, signing time, revocation."""

    kind: Literal["cms", "pdf"]
    valid: bool
    signatures: list[dict[str, Any]]


DOCUMENT_QUERY = (
    ("document_name", {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00-\x1f\x7f]+$"}, False),
    ("purpose", {"type": "string", "minLength": 1, "maxLength": 300}, False),
)

OPERATIONS = (
    Operation("GET", "/v1/signing/ca", "The CA chain (PEM): the issuing CA, then the root to trust", ("signing",),
              responses={200: Body("PEM certificates", "application/pem-certificate-chain", {"type": "string"})}),
    Operation("GET", "/v1/signing/crl", "The issuing CA's certificate revocation list (DER)", ("signing",),
              responses={200: Body("a DER X.509 CRL", "application/pkix-crl", BINARY)}),
    Operation("GET", "/v1/signing/crl/root", "The root CA's certificate revocation list (DER): covers the issuing CA", ("signing",),
              responses={200: Body("a DER X.509 CRL", "application/pkix-crl", BINARY)}),
    Operation(
        "POST", "/v1/signing/tsa", "RFC 3161 timestamp authority: a DER TimeStampReq (application/timestamp-query)", ("signing",),
        request_model=BINARY, request_content_type="application/timestamp-query",
        responses={200: Body("a DER TimeStampResp: granted, or status rejection with its failInfo (badAlg, badRequest, "
                             "badDataFormat — also for a body that is no DER TimeStampReq —, unacceptedPolicy, unacceptedExtension)",
                             "application/timestamp-reply", BINARY),
                   413: "the body is too large", 415: "not application/timestamp-query"},
    ),
    Operation(
        "POST", "/v1/signing/requests",
        "Ask a citizen to sign: a SHA-256 and a document name (JSON) → detached CMS; or a PDF (application/pdf with "
        "?document_name=, or multipart/form-data with `document` and `document_name`) → PAdES signed PDF",
        ("signing",), request_model=SignHashBody, query_params=DOCUMENT_QUERY,
        description="Logged in: the citizen's access token (scope sign), and the citizen gets the prompt at once. Anonymous: a "
                    "client-credentials token; the answer carries `app_link` (harbourid://sign?request=…) for the QR code.",
        responses={201: RequestCreated, **JSON_BODY_ERRORS, **RP_AUTH_ERRORS,
                   403: "the token lacks sign, or the citizen may not sign (assurance-too-low: only plus identities; identity-not-active)",
                   409: "the client or citizen is not known to signing yet (Retry-After)",
                   415: "not application/json, application/pdf or multipart/form-data",
                   400: "a malformed body",
                   422: "the body or query does not match the model (unknown query parameters included), or the upload is not a signable PDF "
                        "(invalid-pdf; also when parsing it exceeds the sandbox's CPU, memory or wall-clock limit)",
                   503: "every PDF parsing worker stayed busy (Retry-After)"},
        security=("bearer",),
    ),
    Operation(
        "GET", "/v1/signing/requests/{request_id}", "A signing request's status", ("signing",),
        responses={200: RequestStatus, **RP_AUTH_ERRORS, 404: "no such request for this client"}, security=("bearer",),
    ),
    Operation(
        "GET", "/v1/signing/requests/{request_id}/result",
        "The detached CMS (application/pkcs7-signature, DER) or the signed PDF (application/pdf), until the result expires",
        ("signing",),
        responses={200: Body("the CMS signature or the signed PDF", "application/pkcs7-signature", BINARY), **RP_AUTH_ERRORS,
                   403: "access_denied: the citizen declined; or the citizen may not sign", 404: "no such request for this client",
                   409: "not-ready: the citizen has not answered yet", 410: "expired"},
        security=("bearer",),
    ),
    Operation(
        "POST", "/v1/signing/requests/{request_id}/claim", "The citizen's app opened an anonymous signing request's link", ("signing",),
        responses={201: Claimed, **DEVICE_AUTH_ERRORS, 403: "this citizen may not sign (assurance-too-low, identity-not-active)",
                   409: "expired, or opened by someone else"},
        security=("deviceToken",),
    ),
    Operation(
        "POST", "/v1/signing/verify",
        "Verify a detached CMS (JSON: cms + sha256 or content) or a signed PDF (application/pdf): signer, chain, time, integrity, revocation",
        ("signing",), request_model=VerifyCmsBody,
        responses={200: VerificationReport, **JSON_BODY_ERRORS,
                   415: "not application/json or application/pdf",
                   422: "the body does not match the model, or it is no signature we can read (unverifiable; also when parsing it "
                        "exceeds the sandbox's CPU, memory or wall-clock limit)",
                   503: "every parsing worker stayed busy (Retry-After)"},
    ),
)

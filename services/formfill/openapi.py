"""formfill's public operations, declared from the models its handlers validate with (merged by the gateway)."""

from __future__ import annotations

from pydantic import BaseModel

from libs.consented_requests import Claimed
from libs.service.openapi import DEVICE_AUTH_ERRORS, JSON_BODY_ERRORS, Body, Operation

from .consents import ConsentList
from .formfill_requests import FormfillRequestBody, RequestCreated, RequestStatus

RP_AUTH_ERRORS = {
    401: "no, invalid or expired access token (WWW-Authenticate: Bearer)",
    403: "the token lacks the formfill scope",
}


class JWKS(BaseModel):
    keys: list[dict[str, str]]


OPERATIONS = (
    Operation("GET", "/v1/formfill/jwks", "formfill's release-signing keys (JWKS)", ("formfill",), responses={200: JWKS}),
    Operation(
        "POST", "/v1/formfill/requests", "Ask a citizen for form data (logged in: their access token; anonymous: a client-credentials token)",
        ("formfill",), request_model=FormfillRequestBody,
        responses={201: RequestCreated, **JSON_BODY_ERRORS, **RP_AUTH_ERRORS,
                   403: "the token lacks formfill, or the client is not registered for a field (field-not-registered)",
                   409: "the client or citizen is not known to formfill yet (Retry-After)"},
        security=("bearer",),
    ),
    Operation(
        "GET", "/v1/formfill/requests/{request_id}", "A request's status", ("formfill",),
        responses={200: RequestStatus, **RP_AUTH_ERRORS, 404: "no such request for this client"}, security=("bearer",),
    ),
    Operation(
        "GET", "/v1/formfill/requests/{request_id}/result", "The release, once: a JWS (application/jwt) or, with an encryption key, a JWE (application/jose)",
        ("formfill",),
        responses={200: Body("the compact JWS or JWE", "application/jwt", {"type": "string"}), **RP_AUTH_ERRORS,
                   403: "access_denied: the citizen declined", 404: "no such request for this client",
                   409: "not-ready: the citizen has not answered yet", 410: "already read, or expired"},
        security=("bearer",),
    ),
    Operation(
        "POST", "/v1/formfill/requests/{request_id}/claim", "The citizen's app opened an anonymous request's link", ("formfill",),
        responses={201: Claimed, **DEVICE_AUTH_ERRORS, 409: "expired, or opened by someone else"}, security=("deviceToken",),
    ),
    Operation("GET", "/v1/consents", "The citizen's consent receipts", ("consents",),
              responses={200: ConsentList, **DEVICE_AUTH_ERRORS}, security=("deviceToken",)),
    Operation(
        "DELETE", "/v1/consents/{receipt_id}", "Revoke a standing consent", ("consents",),
        responses={204: None, **DEVICE_AUTH_ERRORS, 404: "no such consent", 409: "a one-time release cannot be revoked"},
        security=("deviceToken",),
    ),
)

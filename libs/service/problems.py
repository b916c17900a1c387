"""RFC 9457 problem details: the one error format of every Harbour ID API.

The refusals themselves are `libs.errors` (framework-free); `Problem` is the
same class as `libs.errors.Refused`, so handlers raise either. The problem
middleware turns any of them, and every other error, into an
`application/problem+json` response.
"""

from __future__ import annotations

from aiohttp import web

from libs.errors import (
    PROBLEM_TYPE_BASE,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    InternalError,
    NotFound,
    NotReady,
    PayloadTooLarge,
    Refused,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)

from .jsoncodec import dumps

PROBLEM_CONTENT_TYPE = "application/problem+json"

# The kit's older names for the same classes; new code imports libs.errors.
Problem = Refused
ServiceUnavailable = NotReady

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPE_BASE",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "InternalError",
    "MalformedBody",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "Problem",
    "Refused",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "ValidationFailed",
    "problem_from_http_exception",
    "problem_response",
]


class MalformedBody(BadRequest):
    status, title, slug = 400, "Malformed request body", "malformed-body"


class ValidationFailed(Unprocessable):
    status, title, slug = 422, "Request failed validation", "validation-failed"


def problem_response(problem: Refused, request: web.Request | None = None) -> web.Response:
    """Any refusal as problem+json: its status, body (detail and extension members) and headers (Retry-After...)."""
    instance = request.path if request is not None else None
    return web.Response(
        status=problem.status,
        text=dumps(problem.to_dict(instance)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


# aiohttp's own HTTP errors (404 for unknown routes, 405, 413 from
# client_max_size...) become problems with the same status and reason.
def problem_from_http_exception(exc: web.HTTPException) -> Refused:
    default_text = f"{exc.status}: {exc.reason}"
    detail = exc.text if exc.text and exc.text != default_text else None
    headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after", "www-authenticate"}}
    return Refused(
        detail,
        status=exc.status,
        title=exc.reason,
        slug=exc.reason.lower().replace(" ", "-"),
        headers=headers,
    )

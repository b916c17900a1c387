"""RFC 9457 problem details: the one error format of every Harbour ID API.

Handlers raise `Problem` (or a subclass); the problem middleware turns it,
and every other error, into an `application/problem+json` response.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://harbour-id.dev/problems/"


class Problem(Exception):
    """An error the client can act on, rendered as problem+json."""

    status: int = 400
    title: str = "Bad request"
    slug: str = "bad-request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        if slug is not None:
            self.slug = slug
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class MalformedBody(Problem):
    status, title, slug = 400, "Malformed request body", "malformed-body"


class ValidationFailed(Problem):
    status, title, slug = 422, "Request failed validation", "validation-failed"


class Unauthorized(Problem):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(Problem):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(Problem):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(Problem):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(Problem):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(Problem):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class ServiceUnavailable(Problem):
    status, title, slug = 503, "Service unavailable", "service-unavailable"


class InternalError(Problem):
    status, title, slug = 500, "Internal server error", "internal-error"


def problem_response(problem: Problem, request: web.Request | None = None) -> web.Response:
    instance = request.path if request is not None else None
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.to_dict(instance)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


# aiohttp's own HTTP errors (404 for unknown routes, 405, 413 from
# client_max_size...) become problems with the same status and reason.
def problem_from_http_exception(exc: web.HTTPException) -> Problem:
    default_text = f"{exc.status}: {exc.reason}"
    detail = exc.text if exc.text and exc.text != default_text else None
    headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after", "www-authenticate"}}
    return Problem(
        detail,
        status=exc.status,
        title=exc.reason,
        slug=exc.reason.lower().replace(" ", "-"),
        headers=headers,
    )

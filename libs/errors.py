"""Refusals: the one error hierarchy of every Harbour ID service, free of any web framework.

Domain code raises a `Refused` subclass; the service kit's problem middleware
renders any of them as an RFC 9457 problem+json response (status, slug,
title, detail, extension members, headers), so no handler catches one.

A domain error is a declarative subclass in its service's `errors.py`:

    class AlreadyDecided(Conflict):
        slug = "already-decided"
        title = "Already decided"

    raise AlreadyDecided("the citizen has answered this request", request_id=rid)
"""

from __future__ import annotations

from typing import Any

# A problem's `type` is this base and its slug (RFC 9457 §3.1.1).
PROBLEM_TYPE_BASE = "https://harbour-id.dev/problems/"


class Refused(Exception):
    """A request refused for a reason the caller can act on.

    `detail` is for the caller to read; `headers` go out with the answer
    (e.g. `WWW-Authenticate`); every other keyword is an extension member of
    the problem body. `status`, `slug` and `title` override the class's own
    for a one-off refusal; declare a subclass for anything raised twice.
    """

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"
    # An answer the caller meets in the normal course, not a refusal: a result asked for before it is ready, as a
    # relying party polling for it does every few tens of milliseconds. The access log treats it as a success
    # (sampled, not a line each); it is counted in the metrics by its status like any other.
    routine: bool = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or self.title)
        # Instance attributes shadow the class's only when overridden, so a subclass's declaration stays the default.
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        if title is not None:
            self.title = title
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})
        self.extensions: dict[str, Any] = extensions

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        """The problem+json body; `instance` is the request path."""
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class BadRequest(Refused):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(Refused):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(Refused):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Refused):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Refused):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(Refused):
    status, slug, title = 410, "gone", "Gone"


class PayloadTooLarge(Refused):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(Refused):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(Refused):
    status, slug, title = 422, "unprocessable", "Unprocessable"


class _TryAgainLater(Refused):
    """A refusal that passes with time: `retry_after` (seconds) becomes the `Retry-After` header.

    A subclass may declare its own `retry_after` default.
    """

    retry_after: int | None = None

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        seconds = retry_after if retry_after is not None else type(self).retry_after
        if seconds is not None:
            self.headers.setdefault("Retry-After", str(max(0, int(seconds))))


class TooManyRequests(_TryAgainLater):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class NotReady(_TryAgainLater):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class InternalError(Refused):
    """Only the kit raises this, for an error it did not expect; its detail never carries the cause."""

    status, slug, title = 500, "internal-error", "Internal server error"


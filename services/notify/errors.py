"""What notify refuses, declared once each (libs/errors.py); the service kit renders any of them as problem+json."""

from __future__ import annotations

from libs.errors import BadRequest, Conflict, Forbidden, NotFound, NotReady, Unprocessable


# -- the request itself ------------------------------------------------------------

class BadQuery(BadRequest):
    slug, title = "bad-query", "Bad query"


class BadVersion(BadRequest):
    slug, title = "bad-version", "Bad version"


class BadIdempotencyKey(BadRequest):
    slug, title = "bad-idempotency-key", "Bad idempotency key"


class IdempotencyKeyReused(Unprocessable):
    slug, title = "idempotency-key-reused", "Idempotency key reused"


class IdempotentRequestInProgress(NotReady):
    """A key whose first request has not finished storing its answer: retry after `Retry-After`."""

    slug, title = "idempotent-request-in-progress", "Request with this key in progress"
    retry_after = 2


class NotAgencyToken(Forbidden):
    """The token is about a citizen: notify takes the agency's own client-credentials token."""

    slug, title = "forbidden", "Forbidden"


# -- templates ------------------------------------------------------------------------

class TemplateSyntax(BadRequest):
    slug, title = "template-syntax", "Template syntax"


class UndeclaredPlaceholder(BadRequest):
    __doc__ = """Extension member `placeholders`: the names the template uses without declaring them."""

    slug, title = "undeclared-placeholder", "Undeclared placeholder"


class TemplateRender(BadRequest):
    slug, title = "template-render", "Template render"


class TemplateTooCostly(Unprocessable):
    slug, title = "template-too-costly", "Template too costly"


class VersionConflict(Conflict):
    slug, title = "version-conflict", "Version conflict"


# -- sends ----------------------------------------------------------------------------

class MissingPlaceholder(BadRequest):
    __doc__ = """Extension members `placeholders` (and, for a batch, `recipients` with their `missing` names)."""

    slug, title = "missing-placeholder", "Missing placeholder"


class PersonalisationTooLong(BadRequest):
    slug, title = "personalisation-too-long", "Personalisation too long"


class ScheduleTooFar(BadRequest):
    slug, title = "schedule-too-far", "Schedule too far"


class BatchTooLarge(BadRequest):
    slug, title = "batch-too-large", "Batch too large"


class UnknownRecipient(Unprocessable):
    slug, title = "unknown-recipient", "Unknown recipient"


class UnknownClient(Conflict):
    __doc__ = """notify has not yet seen the agency's client.registered event: it comes within moments."""

    slug, title = "unknown-client", "Unknown client"

    def __init__(self, detail: str | None = None, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("Retry-After", "1")


class CallbackURLRefused(Unprocessable):
    slug, title = "callback-url-refused", "Callback url refused"


# -- inbox ----------------------------------------------------------------------------

from libs.service.streams import TooManyStreams  # noqa: E402  (shared with auth's approvals stream)


__all__ = [
    "BadIdempotencyKey", "BadQuery", "BadVersion", "BatchTooLarge", "CallbackURLRefused", "IdempotencyKeyReused",
    "MissingPlaceholder", "NotAgencyToken", "NotFound", "PersonalisationTooLong", "ScheduleTooFar", "TemplateRender", "TemplateSyntax",
    "TemplateTooCostly", "TooManyStreams", "UndeclaredPlaceholder", "UnknownClient", "UnknownRecipient", "VersionConflict",
]

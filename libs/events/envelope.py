"""CloudEvents 1.0 structured-mode JSON envelope (with the distributed-tracing extension).

Every event on every topic is one of these. `data` is JSON; events that would
carry personal data carry it sealed (see libs/crypto), never in the clear.

It is exactly the CloudEvents JSON event format, so an agency reads it with
the official SDKs (tests/e2e/test_agency_cloudevents.py): the required
attributes are non-empty strings, `subject` when present is non-empty, `time`
is RFC 3339 in UTC (`...Z`; a naive datetime is refused rather than written
without an offset), `datacontenttype` is `application/json` because `data` is
always a JSON object, and the one extension, `traceparent`, has a lower-case
alphanumeric name of at most 20 characters (the format's rule for extensions).
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator


class InvalidEnvelope(ValueError):
    """A message that is not a CloudEvent we can handle: a poison message."""


def new_traceparent() -> str:
    """The W3C trace context (version-traceid-parentid-flags) the event is created in: the current span's
    (the request's, or the handling of the event that caused this one), else a trace of its own."""
    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        return f"00-{current.trace_id:032x}-{current.span_id:016x}-{int(current.trace_flags):02x}"
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: str = Field(default="1.0", pattern=r"^1\.0$")
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=200)
    # A URI-reference (e.g. "/auth"): no whitespace or control characters.
    source: str = Field(min_length=1, max_length=500, pattern=r"^[^\s\x00-\x1f\x7f]+$")
    type: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9]+(\.[a-z0-9_]+)+$")
    subject: str | None = Field(default=None, min_length=1, max_length=500)
    time: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    traceparent: str = Field(default_factory=new_traceparent, pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

    @field_validator("time")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)  # serialised as RFC 3339 with "Z"

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "CloudEvent":
        try:
            return cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise InvalidEnvelope(str(exc).splitlines()[0]) from None

"""CloudEvents 1.0 structured-mode JSON envelope (with the distributed-tracing extension).

Every event on every topic is one of these. `data` is JSON; events that would
carry personal data carry it sealed (see libs/crypto), never in the clear.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class InvalidEnvelope(ValueError):
    """A message that is not a CloudEvent we can handle: a poison message."""


def new_traceparent() -> str:
    # W3C trace context: version-traceid-parentid-flags.
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: str = Field(default="1.0", pattern=r"^1\.0$")
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9]+(\.[a-z0-9_]+)+$")
    subject: str | None = Field(default=None, max_length=500)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    traceparent: str = Field(default_factory=new_traceparent, pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "CloudEvent":
        try:
            return cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise InvalidEnvelope(str(exc).splitlines()[0]) from None

"""The approval prompt: what a service asks a citizen to approve, and its digest.

The requesting service builds an `ApprovalRequest`, keeps it, and publishes it
as `approval.requested`. The digest covers exactly what the citizen is shown
and what will happen, so a device signature over it binds the citizen's "yes"
to this request and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from libs import base64url

ACTIONS = ("login", "formfill", "sign", "close_account", "add_device", "test")


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 (the same bytes on every side)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Requester(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(min_length=1, max_length=40)
    client_id: str = Field(min_length=1, max_length=200)
    client_name: str = Field(min_length=1, max_length=200)


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_id: str = Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    account_id: str = Field(min_length=1, max_length=100)
    action: Literal["login", "formfill", "sign", "close_account", "add_device", "test"]
    requester: Requester
    purpose: str = Field(min_length=1, max_length=500)
    # What the phone displays besides the purpose: field names, a document name, a hash prefix...
    details: dict[str, Any] = Field(default_factory=dict)
    # Short code also shown in the browser, so the citizen can match the two screens.
    matching_code: str | None = Field(default=None, max_length=12)
    expires_at: datetime

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expires_at must carry a time zone")
        # Whole seconds: the digest must not depend on how a store rounds microseconds.
        return value.astimezone(UTC).replace(microsecond=0)

    def digest(self) -> str:
        """SHA-256 over the canonical JSON of the whole request, base64url."""
        content = self.model_dump(mode="json")
        return base64url.encode(hashlib.sha256(canonical_json(content)).digest())

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

"""The one exception auth's domain raises for a refused request; the API renders it as problem+json."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """`reason`: a short machine code (it becomes the problem type); `status`: the HTTP status to answer."""

    def __init__(self, reason: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.extra = extra

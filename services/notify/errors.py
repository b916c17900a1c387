"""The one domain error: a request notify refuses, with its problem slug and HTTP status (api.py renders it)."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    def __init__(self, reason: str, message: str, status: int, **extra: Any) -> None:
        super().__init__(message)
        self.reason, self.status, self.extra = reason, status, extra

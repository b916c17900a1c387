"""The one domain error: a request notify refuses, with its problem slug and HTTP status (the service kit renders it)."""

from __future__ import annotations

from libs.errors import ReasonRefused


class Refused(ReasonRefused):
    """`Refused(reason, message, status, **extra)`; transitional until notify declares `libs.errors` subclasses."""

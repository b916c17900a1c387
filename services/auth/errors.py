"""The exception auth's domain raises for a refused request; the service kit renders it as problem+json."""

from __future__ import annotations

from libs.errors import ReasonRefused


class Refused(ReasonRefused):
    """`Refused(reason, message, status=400, **extra)`: `reason` is the problem slug, `status` the HTTP status.

    Transitional: auth's refusals move to declarative `libs.errors` subclasses.
    """

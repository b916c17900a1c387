"""What formfill refuses, declared once each (libs/errors.py); the service kit renders any of them as problem+json.

The refusals every consented request shares (unknown client or citizen,
unusable link, not found, not answered yet, expired, declined) are in
libs/consented_requests/refusals.py.
"""

from __future__ import annotations

from libs.errors import Conflict, Forbidden, Gone, NotFound


class FieldNotRegistered(Forbidden):
    """Extension member `fields`: the fields the client asked for without being registered for them."""

    slug, title = "field-not-registered", "Field not registered"


class ReleaseGone(Gone):
    """A release is read once: read again, or never read in time."""

    slug, title = "gone", "Gone"


class ConsentNotFound(NotFound):
    slug, title = "not-found", "Not found"


class NotStanding(Conflict):
    """A one-time release stays as the citizen's receipt; only a standing consent can be revoked."""

    slug, title = "not-standing", "Not standing"

"""What every consented request refuses the same way (the service names itself where the message says who)."""

from __future__ import annotations

from libs.errors import Conflict, Forbidden, Gone, NotFound

# The event that teaches the service about this client or citizen is on its way: try again in a second.
RETRY_SOON = {"Retry-After": "1"}


class UnknownClient(Conflict):
    slug, title = "unknown-client", "Unknown client"


class CitizenUnknown(Conflict):
    slug, title = "citizen-unknown", "Citizen unknown"


class LinkUnusable(Conflict):
    slug, title = "link-unusable", "Link unusable"


class RequestNotFound(NotFound):
    slug, title = "not-found", "Not found"


class NotAnswered(Conflict):
    slug, title = "not-ready", "Not ready"
    routine = True  # what a relying party polling for the result meets until the citizen answers: no log line each


class RequestExpired(Gone):
    slug, title = "gone", "Gone"


class Declined(Forbidden):
    """The citizen declined: the relying party's OAuth-style `access_denied`."""

    slug, title = "access_denied", "Access denied"

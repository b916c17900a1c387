"""What the consumer of a service that asks for consent (formfill, signing) acts on, and skips unrecorded."""

from __future__ import annotations

from collections.abc import Callable

from libs.events import CloudEvent
from libs.projections import CLIENT_CHANGED, SUBJECT_ASSIGNED

IDENTITY_EVENTS = frozenset({"identity.enrolled", "identity.state_changed", "identity.assurance_changed", SUBJECT_ASSIGNED})


def decided_for(event: CloudEvent, service: str) -> bool:
    """An `approval.decided` of a prompt this service asked for (not another service's, not a login's)."""
    return event.type == "approval.decided" and event.data.get("requester", {}).get("service") == service


def wanted_by(service: str) -> Callable[[CloudEvent], bool]:
    """The events the service's handler acts on: its own decisions, the identity and client projections' events."""

    def wants(event: CloudEvent) -> bool:
        if event.type == "approval.decided":
            return decided_for(event, service)
        return event.type in IDENTITY_EVENTS or event.type in CLIENT_CHANGED

    return wants

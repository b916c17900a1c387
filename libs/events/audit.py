"""Audit events: every security-relevant action, written through the outbox with the change it records.

Never put personal data in `details`: ids, outcomes and reasons only.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from .envelope import CloudEvent
from .outbox import Outbox
from .topics import AUDIT


async def record_audit(
    outbox: Outbox,
    session: AsyncClientSession,
    *,
    service: str,
    subject: str,
    action: str,
    actor: str,
    outcome: str = "success",
    **details: Any,
) -> None:
    await outbox.add(session, AUDIT.name, audit_event(service=service, subject=subject, action=action, actor=actor,
                                                      outcome=outcome, **details))


def audit_event(*, service: str, subject: str, action: str, actor: str, outcome: str = "success", **details: Any) -> CloudEvent:
    """The `audit.recorded` event of one action (for the audit topic)."""
    return CloudEvent(
        source=f"/{service}",
        type="audit.recorded",
        subject=subject,
        data={"action": action, "actor": actor, "outcome": outcome, **details},
    )

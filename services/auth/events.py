"""Topics auth publishes and consumes (see docs/events.md), and its event handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import CloudEvent
from libs.events.consumer import wants_only
from libs.events.topics import APPROVAL_DECIDED, APPROVAL_REQUESTED, AUDIT, CLIENTS, IDENTITY, LOGINS

from .approvals.queue import store_prompt

if TYPE_CHECKING:
    from .context import Auth

# Created at start-up when the environment allows it (locally; Strimzi in production).
TOPICS = (IDENTITY, CLIENTS, APPROVAL_REQUESTED, APPROVAL_DECIDED, LOGINS, AUDIT)
CONSUMER_GROUP = "auth-approvals"


def approval_requests_handler(auth: "Auth"):
    async def handle(event: CloudEvent, session: AsyncClientSession) -> None:
        if event.type == "approval.requested":
            await store_prompt(auth, session, event)

    return wants_only(handle, others_prompts)


def others_prompts(event: CloudEvent) -> bool:
    """The prompts other services ask for; auth's own (a CIBA login's, published for notify's message to the phone)
    are in its queue already, so they are passed over unrecorded."""
    return event.source != "/auth"

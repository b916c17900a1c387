"""Topics the signing service publishes to or consumes from (see docs/events.md)."""

from libs.events.topics import IDENTITY, CLIENTS, APPROVAL_REQUESTED, APPROVAL_DECIDED, AUDIT

# Created at start-up when the environment allows it (locally; Strimzi in production).
TOPICS = (IDENTITY, CLIENTS, APPROVAL_REQUESTED, APPROVAL_DECIDED, AUDIT)

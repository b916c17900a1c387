"""The registry of Kafka topics: every topic the platform uses is declared here.

docs/events.md is the human catalogue of the same names; a test keeps the two
in step. Each topic has a dead-letter twin `<topic>.dlq`.
"""

from __future__ import annotations

from dataclasses import dataclass


DAY_MS = 24 * 3600 * 1000
# How long the broker keeps an event topic's records (deploy/k8s/base/kafka/topics.yaml says the same; a test keeps
# them in step): below the 7 days consumers keep their processed-event markers, so a redelivery is always recognised.
EVENT_RETENTION_MS = 3 * DAY_MS
# Dead letters are kept two weeks for inspection and replay.
DLQ_RETENTION_MS = 14 * DAY_MS
# An agency's own topic: a week, for an agency that was away (deploy/k8s/overlays/prod/agencies/).
AGENCY_RETENTION_MS = 7 * DAY_MS


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    partitions: int = 3
    event_types: tuple[str, ...] = ()
    retention_ms: int = EVENT_RETENTION_MS
    # Its readers rebuild their state from the whole topic at start-up (the revocations): its retention is part of
    # its meaning, so a deployment's cap on retention (HARBOUR_KAFKA_RETENTION_CAP_MS) never shortens it.
    read_from_start: bool = False

    @property
    def dlq(self) -> str:
        return dlq_name(self.name)


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


def agency_topic(client_id: str) -> str:
    """Each agency's own stream of its events, carrying its pairwise identifiers only."""
    return f"agency.{client_id}.events"


IDENTITY = Topic(
    "identity.events",
    "Citizen account life cycle, owned by auth; the enrolled profile is sealed for formfill.",
    event_types=("identity.enrolled", "identity.state_changed", "identity.subject_assigned"),
)
CLIENTS = Topic(
    "clients.events",
    "Relying parties, agencies and kiosks registered with auth; other services keep a projection.",
    event_types=("client.registered", "client.updated", "client.deleted"),
)
APPROVAL_REQUESTED = Topic(
    "approvals.requested",
    "A service asks a citizen to approve something on their phone.",
    event_types=("approval.requested",),
)
APPROVAL_DECIDED = Topic(
    "approvals.decided",
    "auth's record of a citizen's device-signed decision on a prompt.",
    event_types=("approval.decided", "approval.expired"),
)
LOGINS = Topic(
    "logins.events",
    "Outcomes of logins at relying parties, keyed by client; routed to each agency's own topic later.",
    event_types=("login.succeeded", "login.failed"),
)
AUDIT = Topic(
    "audit.events",
    "Security-relevant actions of every service, for the audit trail.",
    event_types=("audit.recorded",),
)
# One partition: the checkpoints in the order signed (each covers the ones before it).
AUDIT_CHECKPOINTS = Topic(
    "audit.checkpoints",
    "Signed checkpoints of signing's audit ledger (size, head chain hash, time, JWS): public, no personal data.",
    partitions=1,
    event_types=("audit.checkpoint",),
    retention_ms=14 * DAY_MS,  # verifiers outside may come back for them later than for events
)
SIGNING = Topic(
    "signing.events",
    "Citizen signing certificates issued and revoked by the platform CA (signatures themselves go to agency topics).",
    event_types=("certificate.issued", "certificate.revoked"),
)

NOTIFICATIONS = Topic(
    "notifications.requested",
    "notify's API to its dispatcher: notifications ready to deliver, up to a chunk of ids per event.",
    event_types=("notification.dispatch",),
)
NOTIFICATIONS_PRIORITY = Topic(
    "notifications.priority",
    "The same for high-priority notifications (approval prompts, security alerts), so a large batch never delays them.",
    event_types=("notification.dispatch",),
)
# One partition: every reader sees revocations in the order auth made them (a reinstatement after its suspension).
REVOCATIONS = Topic(
    "revocations",
    "auth's revocations of access and device tokens, devices and account states, which every service and the gateway honour.",
    partitions=1,
    event_types=("revocation.tokens", "revocation.device", "revocation.account"),
    # Longer than every token's lifetime: a restarted reader rebuilds every revocation that still matters.
    retention_ms=1 * DAY_MS,
    read_from_start=True,
)

ALL_TOPICS: tuple[Topic, ...] = (IDENTITY, CLIENTS, APPROVAL_REQUESTED, APPROVAL_DECIDED, LOGINS, AUDIT, AUDIT_CHECKPOINTS, SIGNING,
                               NOTIFICATIONS,
                               NOTIFICATIONS_PRIORITY, REVOCATIONS)


def topic_configs(topic: Topic, cap_ms: int = 0) -> dict[str, dict[str, str]]:
    """The broker configuration of the topic and of its dead-letter twin: the registry's retention, the topic's
    shortened to `cap_ms` if given (0: no cap, as HARBOUR_KAFKA_RETENTION_CAP_MS).

    The cap is for a broker whose cost grows with what it keeps (the local one: docs/operations.md, "The local
    broker's retention"); dead letters and topics read from the start keep theirs. A broker deletes whole segments
    only, so a capped topic rolls its segment five times per cap: it keeps between one and 1.2 caps' worth.
    """
    dlq = {"retention.ms": str(DLQ_RETENTION_MS)}
    if not cap_ms or topic.read_from_start or topic.retention_ms <= cap_ms:
        return {topic.name: {"retention.ms": str(topic.retention_ms)}, topic.dlq: dlq}
    return {topic.name: {"retention.ms": str(cap_ms), "segment.ms": str(max(cap_ms // 5, 1000))}, topic.dlq: dlq}

"""Events between services: CloudEvents envelope, topic registry, transactional outbox, idempotent consumer."""

from .consumer import EventConsumer, install_consumer
from .envelope import CloudEvent, InvalidEnvelope
from .kafka import PRODUCER, Publisher, create_producer, ensure_topics, install_producer
from .outbox import OUTBOX_RELAY, Outbox, OutboxRelay, install_outbox_relay
from .topics import ALL_TOPICS, Topic, agency_topic, dlq_name

__all__ = [
    "ALL_TOPICS",
    "OUTBOX_RELAY",
    "PRODUCER",
    "CloudEvent",
    "EventConsumer",
    "InvalidEnvelope",
    "Outbox",
    "OutboxRelay",
    "Publisher",
    "Topic",
    "agency_topic",
    "create_producer",
    "dlq_name",
    "ensure_topics",
    "install_consumer",
    "install_outbox_relay",
    "install_producer",
]

"""Events between services: CloudEvents envelope, topic registry, transactional outbox, idempotent consumer."""

import importlib
from typing import TYPE_CHECKING, Any

# Imported on first use (PEP 562): a process that only reads events (the gateway's revocation list) does not load
# the consumer's and the outbox's database driver (pymongo, 8 MB of its memory).
_EXPORTS = {
    "EventConsumer": "consumer", "install_consumer": "consumer",
    "CloudEvent": "envelope", "InvalidEnvelope": "envelope",
    "PRODUCER": "kafka", "Publisher": "kafka", "create_producer": "kafka", "ensure_topics": "kafka",
    "install_producer": "kafka",
    "OUTBOX_RELAY": "outbox", "Outbox": "outbox", "OutboxRelay": "outbox", "install_outbox_relay": "outbox",
    "ALL_TOPICS": "topics", "Topic": "topics", "agency_topic": "topics", "dlq_name": "topics",
}

if TYPE_CHECKING:
    from .consumer import EventConsumer, install_consumer
    from .envelope import CloudEvent, InvalidEnvelope
    from .kafka import PRODUCER, Publisher, create_producer, ensure_topics, install_producer
    from .outbox import OUTBOX_RELAY, Outbox, OutboxRelay, install_outbox_relay
    from .topics import ALL_TOPICS, Topic, agency_topic, dlq_name


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

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

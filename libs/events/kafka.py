"""Kafka plumbing: the producer a service owns, topic creation and the readiness probe."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from aiokafka.helpers import create_ssl_context

from libs.service.app import SETTINGS
from libs.service.settings import KafkaSecurity
from libs.service.health import add_readiness_check
from libs.service.logging import get_logger

from .topics import Topic, dlq_name

PRODUCER = web.AppKey("kafka_producer", AIOKafkaProducer)
log = get_logger("harbour.kafka")


def connection_options(security: KafkaSecurity | None) -> dict:
    """aiokafka's keyword arguments for authenticating to the broker (SASL/SCRAM, TLS), shared by every client."""
    security = security or KafkaSecurity()
    options: dict = {"security_protocol": security.protocol}
    if security.uses_tls:
        options["ssl_context"] = create_ssl_context(cafile=security.ca_file or None)
    if security.uses_sasl:
        options |= {"sasl_mechanism": security.sasl_mechanism, "sasl_plain_username": security.username,
                    "sasl_plain_password": security.password}
    return options


FETCH_API_KEY = 1
IDLE_FETCH_PAUSE_S = 0.05


def _carries_records(response) -> bool:
    for _topic, partitions in response.topics:
        for _partition, _error_code, _highwater, *rest in partitions:
            if rest and rest[-1]:
                return True
    return False


def pause_after_empty_fetches(consumer: AIOKafkaConsumer, pause_s: float = IDLE_FETCH_PAUSE_S) -> AIOKafkaConsumer:
    """Wait `pause_s` after a fetch that brought nothing before the consumer asks again.

    A Kafka broker holds an empty fetch for fetch.max.wait.ms; the local one answers at once, so an
    idle aiokafka consumer would ask hundreds of times a second and every idle service would burn a
    core between itself and the broker. Against a real broker this only spaces its long polls by
    `pause_s`; a message arriving meanwhile waits at most that long. (aiokafka has no setting for
    this, so the consumer's client is wrapped: aiokafka is pinned and a test checks the fetch rate.)
    """
    client = consumer._client
    send = client.send

    async def send_then_pause_if_empty(node_id, request, **kwargs):
        response = await send(node_id, request, **kwargs)
        if request.API_KEY == FETCH_API_KEY and not _carries_records(response):
            await asyncio.sleep(pause_s)
        return response

    client.send = send_then_pause_if_empty
    return consumer


def create_producer(bootstrap: str, client_id: str, security: KafkaSecurity | None = None) -> AIOKafkaProducer:
    # acks=all + idempotence: a send that returns is durable and not duplicated by our own retries.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        **connection_options(security),
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=10000,
    )


async def ensure_topics(bootstrap: str, topics: Iterable[Topic], *, with_dlq: bool = True,
                        security: KafkaSecurity | None = None) -> None:
    """Create the topics (and their dead-letter twins) that do not exist yet.

    Needed locally because an auto-created topic has a single partition.
    """
    wanted: dict[str, int] = {}
    for topic in topics:
        wanted[topic.name] = topic.partitions
        if with_dlq:
            wanted[dlq_name(topic.name)] = 1
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="harbour-admin", **connection_options(security))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, n, 1) for name, n in wanted.items() if name not in existing]
        for new_topic in missing:
            try:
                await admin.create_topics([new_topic])
                log.info("topic created", topic=new_topic.name, partitions=new_topic.num_partitions)
            except TopicAlreadyExistsError:
                pass  # another service created it first
    finally:
        await admin.close()


async def kafka_metadata(producer: AIOKafkaProducer) -> None:
    """Readiness: the broker answers a metadata request."""
    await producer.client.fetch_all_metadata()


def install_producer(app: web.Application, topics: Iterable[Topic] = ()) -> None:
    """Give the app a started producer for its lifetime (and create its topics when allowed)."""
    topics = tuple(topics)

    async def producer_lifecycle(app: web.Application):
        settings = app[SETTINGS]
        if settings.kafka_create_topics and topics:
            await ensure_topics(settings.kafka_bootstrap, topics, security=settings.kafka_security)
        producer = create_producer(settings.kafka_bootstrap, f"harbour-{settings.service}", settings.kafka_security)
        await producer.start()
        app[PRODUCER] = producer
        add_readiness_check(app, "kafka", lambda: kafka_metadata(producer))
        yield
        await producer.stop()

    app.cleanup_ctx.append(producer_lifecycle)

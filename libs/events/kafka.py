"""Kafka plumbing: the producer a service owns, topic creation and the readiness probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from aiokafka.structs import RecordMetadata

from aiokafka.helpers import create_ssl_context

from libs.service.app import SETTINGS
from libs.service.settings import KafkaSecurity
from libs.service.health import add_readiness_check
from libs.service.logging import get_logger

from .topics import Topic, topic_configs

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
# After a fetch that brought nothing: a short pause while records are flowing, a longer one once the consumer's
# topics have been quiet for a while (pause_after_empty_fetches).
IDLE_FETCH_PAUSE_S = 0.05
QUIET_FETCH_PAUSE_S = 0.25
QUIET_AFTER_S = 2.0


def _carries_records(response) -> bool:
    for _topic, partitions in response.topics:
        for _partition, _error_code, _highwater, *rest in partitions:
            if rest and rest[-1]:
                return True
    return False


def pause_after_empty_fetches(consumer: AIOKafkaConsumer, pause_s: float = IDLE_FETCH_PAUSE_S, *,
                              quiet_pause_s: float = QUIET_FETCH_PAUSE_S,
                              quiet_after_s: float = QUIET_AFTER_S) -> AIOKafkaConsumer:
    """Space the fetches that bring nothing: `pause_s` between them while records came in the last `quiet_after_s`,
    `quiet_pause_s` once none have for that long.

    A Kafka broker holds an empty fetch for fetch.max.wait.ms; the local one answers at once, so an
    idle aiokafka consumer would ask hundreds of times a second and every idle service would burn a
    core between itself and the broker. Even at one fetch per 50 ms, the idle consumers (three or so per
    service: its events, the revocation list, auth's client directory) were most of an idle service's CPU — a
    fifth of a core for the idle stack, taken from whatever a one-core benchmark measured. A consumer whose
    topics are busy keeps the short pause (a record waits at most 50 ms); a quiet one asks four times a second,
    so the first record after a quiet spell waits at most 250 ms. The time the broker held the fetch counts
    towards the pause: against Apache Kafka, whose empty fetches last fetch.max.wait.ms (500 ms), there is no
    pause at all. (aiokafka has no setting for this, so the consumer's client is wrapped: aiokafka is pinned and
    a test checks the fetch rate.)
    """
    client = consumer._client
    send = client.send
    last_records = time.monotonic()

    async def send_then_pause_if_empty(node_id, request, **kwargs):
        nonlocal last_records
        asked = time.monotonic()
        response = await send(node_id, request, **kwargs)
        if request.API_KEY == FETCH_API_KEY:
            answered = time.monotonic()
            if _carries_records(response):
                last_records = answered
            else:
                pause = pause_s if answered - last_records < quiet_after_s else quiet_pause_s
                if pause > answered - asked:
                    await asyncio.sleep(pause - (answered - asked))
        return response

    client.send = send_then_pause_if_empty
    return consumer


async def start_consumer(consumer: AIOKafkaConsumer) -> AIOKafkaConsumer:
    """Start `consumer`; when that fails (the broker not there yet, or gone), stop it before the error goes on.

    A consumer whose start failed still holds its client: dropped unstopped, it is never closed, and aiokafka
    reports "Unclosed AIOKafkaConsumer" when it is collected — once per retry of a loop waiting for the broker.
    """
    try:
        await consumer.start()
    except BaseException:
        await stop_consumer(consumer)
        raise
    return consumer


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop an aiokafka consumer and close its connections, also when the broker is down.

    aiokafka (0.14) cancels its in-flight fetches at stop and awaits them; a fetch backing off after a failed
    request (the broker gone) lets that CancelledError out of stop(), before the connections are closed. It is
    not a cancellation of the caller, so it is swallowed, unless the caller is itself being cancelled.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        await consumer._client.close()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


def whole_topic_consumer(bootstrap: str, client_id: str, security: KafkaSecurity | None, **options) -> AIOKafkaConsumer:
    """A consumer of no group that commits nothing and reads committed records only, for a process that follows a
    whole topic itself (the revocation list, auth's client directory); idle fetches spaced as above."""
    return pause_after_empty_fetches(AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, client_id=client_id, enable_auto_commit=False,
        isolation_level="read_committed", **connection_options(security), **options))


async def partitions_of(consumer: AIOKafkaConsumer, topic: str,
                        when_missing: Callable[[], Awaitable[object]] | None = None) -> list[TopicPartition]:
    """The topic's partitions, waiting (and calling `when_missing`, e.g. to create it) while the topic is missing.

    A fresh metadata request each time (topic_partitions): a topic created after start-up is seen at once."""
    while True:
        found = (await topic_partitions(consumer, [topic])).get(topic)
        if found:
            return found
        if when_missing is not None:
            await when_missing()
        await asyncio.sleep(0.5)


async def topic_partitions(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> dict[str, list[TopicPartition]]:
    """The partitions the broker has now for each of `topics` it knows (one it does not know is left out).

    A fresh metadata request for every topic, read from its answer: consumer.topics() does not refresh the cluster
    view that partitions_for_topic reads, and a request naming the topics would make a broker that creates topics
    on first use (the local one) create a missing one with a single partition."""
    cluster = await consumer._client.fetch_all_metadata()
    return {topic: [TopicPartition(topic, p) for p in sorted(found)]
            for topic in topics if (found := cluster.partitions_for_topic(topic))}


async def caught_up(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], timeout_s: float) -> bool:
    """Whether the consumer has reached the end offsets the broker gives now (raises if the broker cannot say).

    Only a broker round trip proves a follower current: aiokafka answers an empty fetch while the broker is gone."""
    ends = await asyncio.wait_for(consumer.end_offsets(partitions), timeout_s)
    return all([await consumer.position(tp) >= end for tp, end in ends.items()])

def on_request_failure(client, callback: Callable[[], None]) -> None:
    """Call `callback` whenever a request of this aiokafka client fails to reach the broker or get an answer."""
    send = client.send

    async def send_noting_failures(node_id, request, **kwargs):
        try:
            return await send(node_id, request, **kwargs)
        except KafkaError:
            callback()
            raise

    client.send = send_noting_failures


def create_producer(bootstrap: str, client_id: str, security: KafkaSecurity | None = None) -> AIOKafkaProducer:
    # acks=all + idempotence: a send that returns is durable and not duplicated by our own retries.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        **connection_options(security),
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=SEND_TIMEOUT_S * 1000,
    )


SEND_TIMEOUT_S = 10


@dataclass(frozen=True)
class Record:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher:
    """The service's idempotent producer, replaced by a fresh one after any failed send.

    An idempotent producer numbers its records per partition. A broker that restarted and lost its newest
    records refuses the numbers that follow (OutOfOrderSequenceNumber) for as long as that producer lives,
    so a producer kept after a failure can publish nothing more; a fresh one gets a new producer id.
    """

    def __init__(self, bootstrap: str, client_id: str, security: KafkaSecurity | None = None) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.security = security
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            await self._ensure_started()

    async def stop(self) -> None:
        async with self._lock:
            await self._discard()

    @property
    def client(self):
        if self._producer is None:
            raise KafkaConnectionError("the producer is being replaced")
        return self._producer.client

    async def send_all(self, records: list[Record]) -> list[RecordMetadata | BaseException]:
        """Send every record and wait for each acknowledgement; a record's result is its metadata or its error.

        Records are sent in order (per-partition order is kept by the idempotent producer); after any
        failure the producer is replaced, so the caller's next attempt starts clean.
        """
        async with self._lock:
            results: list[RecordMetadata | BaseException] = []
            try:
                producer = await self._ensure_started()
                futures = []
                for record in records:
                    try:
                        futures.append(await producer.send(record.topic, value=record.value, key=record.key,
                                                           headers=list(record.headers)))
                    except KafkaError as exc:
                        futures.append(_failed(exc))
                done, _ = await asyncio.wait(futures, timeout=SEND_TIMEOUT_S + 5) if futures else (set(), set())
                results = [(f.exception() or f.result()) if f in done else KafkaTimeoutError() for f in futures]
            except KafkaError as exc:  # the producer could not start: the broker is unreachable
                results = [exc] * len(records)
            if any(isinstance(r, BaseException) for r in results):
                log.warning("publishing failed; replacing the producer", client_id=self.client_id,
                            failed=sum(isinstance(r, BaseException) for r in results), sent=len(records))
                await self._discard()
            return results

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: list[tuple[str, bytes]] | None = None) -> RecordMetadata:
        [result] = await self.send_all([Record(topic, value, key, tuple(headers or ()))])
        if isinstance(result, BaseException):
            raise result
        return result

    async def _ensure_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = create_producer(self.bootstrap, self.client_id, self.security)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _discard(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except (asyncio.TimeoutError, KafkaError):
                pass  # its records already failed; nothing is left to flush


PRODUCER = web.AppKey("kafka_producer", Publisher)


def _failed(exc: BaseException) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


async def ensure_topics(bootstrap: str, topics: Iterable[Topic], *, with_dlq: bool = True,
                        security: KafkaSecurity | None = None, retention_cap_ms: int = 0) -> None:
    """Create the topics (and their dead-letter twins) that do not exist yet, with the registry's retention.

    Needed locally because an auto-created topic has a single partition. With `retention_cap_ms` (the local
    stack's HARBOUR_KAFKA_RETENTION_CAP_MS) every event topic keeps at most about that long, an existing one too
    (libs/events/topics.py `topic_configs`).
    """
    wanted: dict[str, int] = {}
    configs: dict[str, dict[str, str]] = {}
    for topic in topics:
        own = topic_configs(topic, retention_cap_ms)
        wanted[topic.name], configs[topic.name] = topic.partitions, own[topic.name]
        if with_dlq:
            wanted[topic.dlq], configs[topic.dlq] = 1, own[topic.dlq]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="harbour-admin", **connection_options(security))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, n, 1, topic_configs=configs[name]) for name, n in wanted.items() if name not in existing]
        for new_topic in missing:
            try:
                await admin.create_topics([new_topic])
                log.info("topic created", topic=new_topic.name, partitions=new_topic.num_partitions,
                         retention_ms=int(configs[new_topic.name]["retention.ms"]))
            except TopicAlreadyExistsError:
                pass  # another service created it first
        if retention_cap_ms:
            await _cap_retention(admin, {name: configs[name] for name in wanted if name in existing})
    finally:
        await admin.close()


async def _cap_retention(admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]]) -> None:
    """Shorten the retention of existing topics that keep longer than `configs` says (a stack made before the cap)."""
    if not configs:
        return
    described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in configs])
    current: dict[str, int] = {}
    for response in described:
        for _error, _message, _type, name, entries in response.resources:
            value = next((entry[1] for entry in entries if entry[0] == "retention.ms"), None)
            current[name] = int(value) if value not in (None, "") else -1
    longer = [name for name, wanted in configs.items()
              if current.get(name, -1) < 0 or current[name] > int(wanted["retention.ms"])]
    if longer:
        # AlterConfigs sets a topic's whole configuration: these topics carry no other setting of their own.
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=configs[name]) for name in longer])
        log.info("topic retention capped", topics=len(longer))


async def kafka_metadata(producer: Publisher) -> None:
    """Readiness: the broker answers a metadata request."""
    await producer.start()
    await producer.client.fetch_all_metadata()


def install_producer(app: web.Application, topics: Iterable[Topic] = ()) -> None:
    """Give the app a started producer for its lifetime (and create its topics when allowed)."""
    topics = tuple(topics)

    async def producer_lifecycle(app: web.Application):
        settings = app[SETTINGS]
        if settings.kafka_create_topics and topics:
            await ensure_topics(settings.kafka_bootstrap, topics, security=settings.kafka_security,
                                retention_cap_ms=settings.kafka_retention_cap_ms)
        producer = Publisher(settings.kafka_bootstrap, f"harbour-{settings.service}", settings.kafka_security)
        await producer.start()
        app[PRODUCER] = producer
        add_readiness_check(app, "kafka", lambda: kafka_metadata(producer))
        yield
        await producer.stop()

    app.cleanup_ctx.append(producer_lifecycle)

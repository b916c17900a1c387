"""Keeping a process's revocation list current: every instance reads the whole `revocations` topic itself.

No consumer group and no committed offsets: each process (every replica of
every service, the gateway too) assigns itself the topic's partition, reads
it from the beginning at start-up and then follows it. The topic's retention
(a day) is far longer than any token lifetime, so a restarted instance
rebuilds every revocation whose token could still be presented; entries whose
tokens have expired are skipped on the way. Until that first read reaches
the end offsets of start-up the list is not loaded: readiness fails and token
checks answer 503 rather than let a revoked token through.

A revocation reaches the list about as fast as auth's outbox relay publishes
(woken by the commit) plus one fetch: well under the 2 seconds promised.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.background import stop_task
from libs.events.envelope import CloudEvent, InvalidEnvelope
from libs.events.kafka import caught_up, ensure_topics, partitions_of, start_consumer, stop_consumer, whole_topic_consumer
from libs.events.topics import REVOCATIONS as REVOCATIONS_TOPIC
from libs.service.app import SETTINGS
from libs.service.health import add_readiness_check
from libs.service.logging import get_logger
from libs.service.settings import KafkaSecurity

from .metrics import REVOCATION_ENTRIES, REVOCATION_STALENESS
from .projection import RevocationList

PRUNE_EVERY_S = 60.0
CONFIRM_EVERY_S = 2.0
CONFIRM_TIMEOUT_S = 5.0
log = get_logger("harbour.revocations")


class NotLoaded(RuntimeError):
    """The list has not been read up to where it stood at start-up: nothing can be said about a token yet."""


class Revocations:
    def __init__(self, *, service: str, bootstrap: str, security: KafkaSecurity | None = None,
                 create_topic: bool = False, topic: str = REVOCATIONS_TOPIC.name) -> None:
        self.service = service
        self.bootstrap = bootstrap
        self.security = security
        self.create_topic = create_topic
        self.topic = topic
        self.list = RevocationList()
        self.loaded = asyncio.Event()
        self._pruned_at = time.monotonic()
        self._fetched_at = time.monotonic()
        # Read at scrape time, so a follower stuck on a dead broker shows its growing age.
        REVOCATION_STALENESS.labels(service).set_function(lambda: time.monotonic() - self._fetched_at)
        REVOCATION_ENTRIES.labels(service).set_function(lambda: len(self.list))

    def refusal(self, claims: dict) -> str | None:
        """Why these verified claims are refused (revoked token, device or account), or None. NotLoaded if unknown yet."""
        if not self.loaded.is_set():
            raise NotLoaded("the revocation list is still loading")
        return self.list.refusal(claims)

    async def check_loaded(self) -> None:
        """Readiness: the list has caught up with the topic once."""
        if not self.loaded.is_set():
            raise NotLoaded("the revocation list is still loading")

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                # e.g. the broker not there yet: start again (re-reading is harmless, entries only tighten).
                log.exception("following the revocations failed; retrying", service=self.service)
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        consumer = whole_topic_consumer(self.bootstrap, f"harbour-{self.service}-revocations", self.security,
                                        auto_offset_reset="earliest")
        await start_consumer(consumer)
        try:
            partitions = await partitions_of(consumer, self.topic, self._create_topic if self.create_topic else None)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            targets = await consumer.end_offsets(partitions)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for messages in batches.values():
                    for message in messages:
                        self._apply(message.value)
                if not self.loaded.is_set() and all([await consumer.position(tp) >= end for tp, end in targets.items()]):
                    self.loaded.set()
                    self._fetched_at = time.monotonic()
                    log.info("revocation list loaded", service=self.service, entries=len(self.list))
                if self.loaded.is_set() and time.monotonic() - self._fetched_at > CONFIRM_EVERY_S:
                    await self._confirm_current(consumer, list(targets))
                if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                    self.list.prune()
                    self._pruned_at = time.monotonic()
        finally:
            await stop_consumer(consumer)

    async def _confirm_current(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Ask the broker for the end offsets: caught up with them means the list is current as of now.

        An empty fetch proves nothing (aiokafka answers empty while the broker is gone), so freshness is
        only ever confirmed by a broker round trip; while that fails, the staleness metric grows."""
        try:
            current = await caught_up(consumer, partitions, CONFIRM_TIMEOUT_S)
        except Exception as exc:  # the broker is unreachable: keep serving the list we have, visibly stale
            log.warning("revocation list not confirmed current", service=self.service, error=type(exc).__name__)
            return
        if current:
            self._fetched_at = time.monotonic()

    async def _create_topic(self) -> None:
        await ensure_topics(self.bootstrap, [REVOCATIONS_TOPIC], security=self.security)

    def _apply(self, raw: bytes | None) -> None:
        try:
            event = CloudEvent.from_json(raw or b"")
            self.list.apply(event.type, event.data)
        except (InvalidEnvelope, KeyError, TypeError, ValueError):
            # Only auth writes this topic; a message it cannot have written is skipped, loudly.
            log.error("unreadable revocation event skipped", service=self.service)


REVOCATIONS = web.AppKey("revocations", Revocations)


def install_revocations(app: web.Application) -> Revocations:
    """Give the app its revocation list, followed for the app's lifetime, and a readiness check on it."""
    settings = app[SETTINGS]
    revocations = Revocations(service=settings.service, bootstrap=settings.kafka_bootstrap, security=settings.kafka_security,
                              create_topic=settings.kafka_create_topics)
    app[REVOCATIONS] = revocations
    add_readiness_check(app, "revocations", revocations.check_loaded)

    async def follow(app: web.Application):
        task = asyncio.create_task(revocations.run(), name="revocations")
        yield
        await stop_task(task)

    app.cleanup_ctx.append(follow)
    return revocations

"""python -m services.notify.dispatcher — the delivery worker, a process of its own.

It consumes the dispatch topics (normal and priority, in separate consumer
groups so a 10,000-recipient batch never holds up an approval prompt),
delivers each chunk in one transaction (delivery.py), and runs the timed
work: releasing scheduled and quiet-hours notifications, pushing through the
push adapter, handing e-mails and SMS to their adapters (receipts.py), and
posting status callbacks. Killing it loses nothing: Kafka
redelivers the uncommitted chunk and the consumer's processed-event markers
make the effect exactly-once. It serves /healthz and /readyz on its own port
(HARBOUR_NOTIFY_DISPATCHER_PORT) and /metrics on its internal metrics port
(HARBOUR_NOTIFY_DISPATCHER_METRICS_PORT).
"""

from __future__ import annotations

if __name__ == "__main__":  # the worker's process (not an import of the module): before anything else is imported
    from libs.lean_start import start_lean

    start_lean()

import asyncio  # noqa: E402
import contextlib
import dataclasses
import math
import time

from aiohttp import web

from libs.background import repeat_passes, stop_task
from libs.backbone import install_backbone
from libs.clock import Clock
from libs.events import OUTBOX_RELAY, CloudEvent, install_consumer
from libs.events.topics import NOTIFICATIONS, NOTIFICATIONS_PRIORITY
from libs.outbound import Outbound
from libs.service import create_service_app, run
from libs.service.logging import get_logger
from libs.service.tracing import client_session
from libs.store import DATABASE, MONGO_CLIENT

from . import callbacks, delivery, jobs, receipts, sweeps
from .channels import PushAdapter, adapter_for, batch_queue, push_queue, send_due_push_batches, send_due_pushes
from .collections import INDEXES, TIMED_WORK, TIMED_WORK_IDLE_MAX_S
from .messaging import MessageAdapter, adapters_for, message_queue
from .context import Notify, open_context
from .events import TOPICS
from .settings import NotifySettings

NOTIFY = web.AppKey("notify", Notify)
GROUP = "notify-dispatcher"
PRIORITY_GROUP = "notify-dispatcher-priority"
log = get_logger("harbour.notify.dispatcher")
IDLE_BEFORE_SWEEP_S = 5.0
# How often an idle dispatcher looks for stale work (a sixth of stale_after_s, at most this): every pass (1 s) was a
# third of the database queries an idle stack made, for work that is stale only after stale_after_s (30 s).
SWEEP_EVERY_MAX_S = 5.0


class ConsumerActivity:
    """When the dispatch consumers last finished an event, and how many they are handling now.

    The sweepers run only once nothing is in flight and the queue has been quiet for a while, so a
    long backlog or a long expansion is never mistaken for lost work. (A sweep that touched a job
    while its expansion ran made the expansion's transaction conflict and start again — on a slow
    machine, again and again.)
    """

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._in_flight = 0
        self._last = clock()

    @contextlib.contextmanager
    def handling(self):
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._last = self._clock()

    def idle_for(self) -> float:
        return 0.0 if self._in_flight else self._clock() - self._last


def handler(notify: Notify, activity: ConsumerActivity):
    async def handle(event: CloudEvent, session) -> None:
        with activity.handling():
            await _handle(event, session)

    async def _handle(event: CloudEvent, session) -> None:
        if event.type == "notification.dispatch":
            started = time.perf_counter()
            if "job_id" in event.data:  # a batch's recipients, written as they are delivered
                outcome = await delivery.deliver_job_chunk(notify, session, event.data["job_id"], list(event.data["positions"]),
                                                           event.data.get("account_ids"))
            else:
                outcome = await delivery.deliver(notify, session, list(event.data["notification_ids"]))
            log.info("chunk dispatched", event_id=event.id, seconds=round(time.perf_counter() - started, 3), **outcome)
        elif event.type == "notification.job":
            created = await jobs.expand_job(notify, session, event.data["job_id"])
            log.info("job expanded", job_id=event.data["job_id"], notifications=created)

    return handle


async def _timed_work(notify: Notify, adapter: PushAdapter, activity: ConsumerActivity,
                      messengers: dict[str, MessageAdapter]) -> None:
    settings = notify.settings
    messages = message_queue(notify.db, max_attempts=settings.channel_max_attempts, backoff_s=settings.channel_backoff_s)
    outbound = Outbound()  # agencies' callback URLs are outside parties': SSRF-guarded, failures remembered briefly
    pushes = push_queue(notify.db, max_attempts=settings.push_max_attempts, backoff_s=settings.push_backoff_s)
    batches = batch_queue(notify.db, max_attempts=settings.push_max_attempts, backoff_s=settings.push_backoff_s)
    sweep_every_s = min(SWEEP_EVERY_MAX_S, settings.stale_after_s / 6)
    swept_at = -math.inf

    async def one_pass() -> int:
        nonlocal swept_at
        busy = await sweeps.release_due(notify, settings.chunk_size)
        sweep = time.monotonic() - swept_at >= sweep_every_s
        if sweep and activity.idle_for() > IDLE_BEFORE_SWEEP_S:
            busy += await sweeps.redispatch_stale(notify, settings.stale_after_s, settings.chunk_size)
            busy += await sweeps.reexpand_stale(notify, settings.stale_after_s)
        busy += await send_due_push_batches(batches, pushes, notify.cipher, adapter, notify.clock)
        busy += await send_due_pushes(pushes, notify.cipher, adapter, notify.clock)
        busy += await receipts.send_due_messages(notify, messages, messengers)
        sent_callbacks = await callbacks.send_due(notify, outbound)
        busy += sent_callbacks
        # The backlog gauge when callbacks went out (it moved), else at the sweeps' pace (the API queues some).
        if sweep or sent_callbacks:
            await callbacks.record_backlog(notify)
        if sweep:
            swept_at = time.monotonic()
        return busy

    await repeat_passes(one_pass, interval_s=settings.poll_interval_s, what="dispatcher timed work", wake_name=TIMED_WORK,
                        idle_max_s=TIMED_WORK_IDLE_MAX_S)


def create_app(settings: NotifySettings | None = None, *, clock: Clock | None = None) -> web.Application:
    settings = settings or NotifySettings.from_env(sealing_key=False)  # it opens no sealed event
    # Same database as the API; its own name (logs, metrics, Kafka client id) and port.
    service = dataclasses.replace(settings.service, service="notify-dispatcher", port=settings.dispatcher_port,
                                  metrics_port=settings.dispatcher_metrics_port)
    app = create_service_app(service)
    install_backbone(app, indexes=INDEXES, topics=TOPICS)

    async def dispatcher_context(app: web.Application):
        http = client_session()
        notify = await open_context(settings, app[MONGO_CLIENT], app[DATABASE], app[OUTBOX_RELAY], http, clock)
        app[NOTIFY] = notify
        adapter = adapter_for(settings.push_adapter, notify.db, notify.cipher, notify.clock)
        task = asyncio.create_task(_timed_work(notify, adapter, activity, adapters_for(settings)), name="notify-timed-work")
        yield
        await stop_task(task)
        await http.close()

    activity = ConsumerActivity()
    app.cleanup_ctx.append(dispatcher_context)
    # Replicas share the partitions through the consumers' leases (libs/events/partition_leases.py).
    install_consumer(app, group=PRIORITY_GROUP, topics=[NOTIFICATIONS_PRIORITY.name], handler=lambda db: handler(app[NOTIFY], activity))
    install_consumer(app, group=GROUP, topics=[NOTIFICATIONS.name], handler=lambda db: handler(app[NOTIFY], activity))
    return app


if __name__ == "__main__":
    run(create_app)

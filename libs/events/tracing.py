"""Trace context through the outbox and Kafka (libs/service/tracing.py has the HTTP side).

One journey stays one trace across services:

1. An event is created in the context of whatever caused it — the request's
   server span, or the span of the event being handled — and carries it in
   its CloudEvents `traceparent` (envelope.py; the distributed-tracing
   extension, inside the event's JSON as structured mode has it). The outbox
   row keeps it beside the event.
2. The relay publishes each event in a producer span, the child of that
   context (`published`), and puts the producer span's context in the
   record's W3C `traceparent` header.
3. A consumer handles each event in a consumer span (`processing`), the child
   of the record's `traceparent` header, or of the event's own `traceparent`
   when the record has none (an agency's replay, a dead letter copied back);
   events created while it handles one continue the same trace.

With tracing off (no exporter), the spans are bare contexts and cost next to
nothing; the ids travel all the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from libs.service.tracing import context_from, traceparent, tracer

from .envelope import CloudEvent

TRACEPARENT_HEADER = "traceparent"


def published(topic: str, event_id: str, event_type: str, creation: str | None) -> Span:
    """The producer span of one event's send, the child of the context it was created in. End it on the ack."""
    return tracer().start_span(
        f"publish {topic}", context=context_from({TRACEPARENT_HEADER: creation} if creation else {}),
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.operation.type": "send",
                    "messaging.destination.name": topic, "messaging.message.id": event_id,
                    "cloudevents.event_id": event_id, "cloudevents.event_type": event_type},
    )


def header_of(span: Span) -> tuple[str, bytes] | None:
    """The record header carrying `span`'s context (None for a span without one)."""
    value = traceparent(span.get_span_context())
    return (TRACEPARENT_HEADER, value.encode()) if value else None


def acknowledged(span: Span, partition: int, offset: int) -> None:
    if span.is_recording():
        span.set_attribute("messaging.destination.partition.id", str(partition))
        span.set_attribute("messaging.kafka.offset", offset)
    span.end()


def failed(span: Span, error: BaseException) -> None:
    if span.is_recording():
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def end_all(spans: Sequence[Span], results: Sequence[object]) -> None:
    """End each publish span with its send's result (record metadata, or the exception it failed with)."""
    for span, result in zip(spans, results):
        if isinstance(result, BaseException):
            failed(span, result)
        else:
            acknowledged(span, result.partition, result.offset)


def _record_traceparent(message: ConsumerRecord) -> str | None:
    for name, value in message.headers or ():
        if name.lower() == TRACEPARENT_HEADER and value:
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


@contextmanager
def processing(message: ConsumerRecord, event: CloudEvent, group: str) -> Iterator[Span]:
    """The consumer span of handling `event`: current while the handler runs, so what it publishes follows on."""
    parent = context_from({TRACEPARENT_HEADER: _record_traceparent(message) or event.traceparent})
    if not trace.get_current_span(parent).get_span_context().is_valid:
        parent = context_from({TRACEPARENT_HEADER: event.traceparent})
    with tracer().start_as_current_span(
        f"process {message.topic}", context=parent, kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "messaging.operation.type": "process",
                    "messaging.destination.name": message.topic, "messaging.consumer.group.name": group,
                    "messaging.destination.partition.id": str(message.partition), "messaging.kafka.offset": message.offset,
                    "messaging.message.id": event.id, "cloudevents.event_id": event.id,
                    "cloudevents.event_type": event.type},
        record_exception=False, set_status_on_exception=False,
    ) as span:
        yield span


def outcome(span: Span, result: str) -> None:
    """Record how the handling ended: processed, duplicate or dead_lettered."""
    if span.is_recording():
        span.set_attribute("harbour.event.outcome", result)
        if result == "dead_lettered":
            span.set_status(Status(StatusCode.ERROR))

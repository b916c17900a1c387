"""One trace from a request through the outbox and Kafka to another service's consumer, on the real broker and database.

A caller's `traceparent` reaches the writer's server span; the event it
publishes carries that context in its JSON, the relay's producer span is its
child and travels in the record's W3C `traceparent` header, and the reader's
consumer span is the child of that. Spans end in the SDK's in-memory exporter.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.trace import SpanKind

from libs.events import CloudEvent
from libs.store import DATABASE

from ..support.broker import new_topic, read_all
from ..support.polling import eventually
from ..support.tracing import hex_span, recorded_spans
from .test_outbox_and_consumer import reader_app, writer_app

pytestmark = pytest.mark.integration

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"


async def test_a_request_and_the_consumers_handling_of_its_event_are_one_trace(infra):
    spans = recorded_spans()
    topic = await new_topic(infra.kafka_bootstrap)
    writer = writer_app(infra.settings("writer"), topic)
    reader = reader_app(infra.settings("reader"), topic)
    async with TestClient(TestServer(writer)) as w, TestClient(TestServer(reader)):
        created = await w.post("/accounts", json={"handle": "alice"},
                               headers={"traceparent": f"00-{CALLER_TRACE}-b7ad6b7169203331-01"})
        assert created.status == 201
        account = await created.json()
        await eventually(lambda: reader[DATABASE].account_projection.find_one({"_id": account["id"]}))

        def consumed():
            return [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER
                    and s.attributes["messaging.message.id"] == account["event_id"]]

        [consumer] = await eventually(consumed)
        finished = spans.get_finished_spans()
        [server] = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /accounts"]
        [producer] = [s for s in finished if s.kind == SpanKind.PRODUCER and s.attributes["messaging.message.id"] == account["event_id"]]

        assert {f"{s.context.trace_id:032x}" for s in (server, producer, consumer)} == {CALLER_TRACE}
        assert producer.parent.span_id == server.context.span_id
        assert consumer.parent.span_id == producer.context.span_id and consumer.parent.is_remote
        assert producer.name == f"publish {topic.name}" and consumer.name == f"process {topic.name}"
        assert consumer.attributes["harbour.event.outcome"] == "processed"
        assert consumer.attributes["cloudevents.event_type"] == "account.created"
        assert producer.attributes["messaging.kafka.offset"] >= 0

        # On the wire: structured mode, the event's own traceparent (where it was created: the request) in its
        # JSON, and the send's producer span in the record's W3C header.
        [message] = await read_all(infra.kafka_bootstrap, topic.name, 1)
        event = CloudEvent.from_json(message.value)
        assert event.traceparent == f"00-{CALLER_TRACE}-{hex_span(server)}-01"
        headers = dict(message.headers)
        assert headers["content-type"] == b"application/cloudevents+json"
        assert headers["traceparent"] == f"00-{CALLER_TRACE}-{hex_span(producer)}-01".encode()
        assert not any(name.startswith("ce_") for name in headers)

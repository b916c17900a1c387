"""An agency reads its topic as the ecosystem does: librdkafka (confluent-kafka) and the official CloudEvents SDK.

One relying party is an agency of every kind: a citizen logs in to it, releases form fields to it, signs a
document for it and gets its notification, which the citizen reads. Auth, formfill, signing and notify each
publish to `agency.<client_id>.events`; the agency reads the topic with a librdkafka consumer in a group of
its own and parses every record with the SDK's Kafka protocol binding. Every event the platform published
(as its services' outboxes record) arrives once, in structured mode, and reads back attribute for attribute.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.v1 import kafka as ce_kafka_v1
from confluent_kafka import Consumer, Producer, TopicPartition
from dateutil.parser import isoparse
from jwcrypto import jwk as jwcrypto_jwk

from libs.events import CloudEvent, agency_topic

from ..support import formfill, signing
from ..support.audit import audit_records, no_personal_data
from ..support.broker import new_topic
from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.notify import Agency
from ..support.oidc import claims_of, login, register
from ..support.people import identity
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
STRUCTURED = [("content-type", b"application/cloudevents+json")]
# Beside content-type, a record may carry W3C trace context for the relay's send (not a CloudEvents attribute).
OTHER_HEADERS = {"traceparent", "tracestate"}
PUBLISHERS = ("auth", "formfill", "signing", "notify")


def librdkafka_records(bootstrap: str, topic: str, group: str, count: int, timeout_s: float = 60) -> list:
    """The first `count` records of `topic`, read by a librdkafka consumer of `group` from the earliest offsets."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count:
            assert time.monotonic() < deadline, f"read {len(records)} of {count} records in {timeout_s} s"
            record = consumer.poll(0.5)
            if record is not None:
                assert record.error() is None, record.error()
                records.append(record)
    finally:
        consumer.close()
    return records


def high_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"watermark-{uuid.uuid4().hex[:8]}"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        consumer.close()


async def published_to(platform, topic: str) -> list[dict]:
    """What the services' outboxes hold for `topic`: {"key", "pending", "offset" (once sent), "event" (the JSON)}."""
    async with mongo(platform.infra.mongo_uri) as client:
        found = []
        for service in PUBLISHERS:
            async for doc in client[platform.database(service)]["outbox"].find({"topic": topic}):
                found.append({"key": doc["key"], "pending": bool(doc.get("pending")), "offset": doc.get("offset"),
                              "event": json.loads(bytes(doc["value"]))})
        return found


@pytest.mark.timeout(300)  # four journeys through the whole stack; slow on a loaded 2-core machine
async def test_every_event_of_an_agency_reaches_librdkafka_and_the_cloudevents_sdk(platform, kiosk, metadata, tmp_path):
    key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    rp = register(platform, client_name="Harbour Housing Authority", scope="openid formfill sign notify",
                  formfill_fields=formfill.FIELDS, encryption_jwk=json.loads(key.export_public()), agency_events=True)
    topic = agency_topic(rp["client_id"])
    person = identity()
    app = await enrolled_app(platform, kiosk, tmp_path, "phone", person=person)

    # auth: login.succeeded
    tokens, _ = await login(platform, metadata, rp, app, scope="openid formfill sign")
    token, sub = tokens["access_token"], claims_of(tokens["id_token"])["sub"]
    # formfill: consent.granted
    asked = await formfill.created(platform, token, [("name_en", True), ("email", True)])
    await app.approve((await formfill.prompt_for(app, asked["request_id"]))["approval_id"])
    await formfill.wait_for_status(platform, token, asked["request_id"], "approved")
    # signing: signature.completed
    to_sign = await signing.create(platform, token, json={"document_name": "tenancy.txt",
                                                          "sha256": hashlib.sha256(b"tenancy agreement").hexdigest()})
    await app.approve((await signing.prompt_for(app, to_sign["request_id"]))["approval_id"])
    await signing.wait_for(platform, token, to_sign["request_id"], "signed")
    # notify: notification.status_changed, delivered then read
    agency = Agency(platform, metadata, "Harbour Housing Authority", client=rp)
    template = await agency.template()
    sent = await agency.send({"template_id": template["template_id"], "sub": sub, "personalisation": {"name": "Chan", "licence": "H-7"}})
    assert sent.status_code == 201, sent.text
    notification_id = sent.json()["notification_id"]
    [item] = await eventually(lambda: _inbox_item(app, notification_id), timeout_s=30)
    await app.read(item["id"])

    def complete(found):
        statuses = {e["event"]["data"].get("status") for e in found if e["event"]["type"] == "notification.status_changed"}
        types = {e["event"]["type"] for e in found}
        done = {"login.succeeded", "consent.granted", "signature.completed"} <= types and {"delivered", "read"} <= statuses
        return found if done and not any(e["pending"] for e in found) else None

    async def all_published():
        return complete(await published_to(platform, topic))

    published = await eventually(all_published, timeout_s=40, interval_s=0.5)
    assert {e["event"]["source"] for e in published} == {"/auth", "/formfill", "/signing", "/notify"}
    expected = {e["event"]["id"]: e for e in published}

    # The agency's librdkafka consumer, a group of its own, from the earliest record to the end of the topic.
    end = high_watermark(platform.infra.kafka_bootstrap, topic)
    records = await asyncio.to_thread(librdkafka_records, platform.infra.kafka_bootstrap, topic,
                                      f"{rp['client_id']}-librdkafka", end)
    assert sorted(ce_kafka.from_structured_event(_message(r)).get_id() for r in records) == sorted(expected)
    assert end == len(expected)  # each event once on the topic, nothing else

    for record in records:
        # Structured mode exactly: the format's media type, once; no binary-mode ce_ header, nothing but trace context.
        headers = record.headers() or []
        assert [h for h in headers if h[0].lower() == "content-type"] == STRUCTURED
        assert {name for name, _ in headers} - {"content-type"} <= OTHER_HEADERS
        message = _message(record)
        event = ce_kafka.from_structured_event(message)
        assert ce_kafka.from_kafka_event(message).get_attributes() == event.get_attributes()  # detected as structured
        published_event = expected[event.get_id()]["event"]
        assert record.offset() == expected[event.get_id()]["offset"]  # where the broker said it put it
        assert (event.get_specversion(), event.get_type(), event.get_source(), event.get_subject()) == (
            "1.0", published_event["type"], published_event["source"], published_event["subject"])
        assert event.get_time() == isoparse(published_event["time"]) and event.get_time().utcoffset().total_seconds() == 0
        assert event.get_datacontenttype() == "application/json" and event.get_data() == published_event["data"]
        assert event.get_extension("traceparent") == published_event["traceparent"]
        assert event.get_extension("partitionkey") == expected[event.get_id()]["key"] == record.key().decode()
        # The SDK's former API (1.x's cloudevents.kafka, kept as cloudevents.v1.kafka) reads it too.
        legacy = ce_kafka_v1.from_structured(ce_kafka_v1.KafkaMessage(dict(record.headers()), record.key(), record.value()))
        assert (legacy["id"], legacy["type"], legacy["source"], legacy.data) == (
            event.get_id(), event.get_type(), event.get_source(), event.get_data())
        # And the platform's own envelope agrees with what the SDK read.
        assert CloudEvent.from_json(record.value()).model_dump(mode="json", exclude_none=True) == published_event

    by_type = {}
    for record in records:
        event = ce_kafka.from_structured_event(_message(record))
        by_type.setdefault(event.get_type(), []).append(event.get_data())
    assert [d["sub"] for d in by_type["login.succeeded"]] == [sub]
    assert [(d["request_id"], d["sub"]) for d in by_type["consent.granted"]] == [(asked["request_id"], sub)]
    assert [(d["request_id"], d["sub"]) for d in by_type["signature.completed"]] == [(to_sign["request_id"], sub)]
    notified = [n for d in by_type["notification.status_changed"] for n in d["notifications"]]
    assert {(n["notification_id"], n["sub"], n["status"]) for n in notified} == {
        (notification_id, sub, "delivered"), (notification_id, sub, "read")}

    # The citizen's data tracker reads the same journey from the audit records (docs/events.md, the inventory),
    # selected by account id: each step written with the change that made it, no personal data in clear.
    trail = await _audit_trail(platform, app.profile.account_id)
    actions = {}
    for record in trail:
        actions.setdefault(record["data"]["action"], []).append(record["data"])
    [logged_in] = actions["login"]
    assert (logged_in["client_id"], logged_in["flow"], logged_in["outcome"]) == (rp["client_id"], "browser", "success")
    assert logged_in["acr"] == claims_of(tokens["id_token"])["acr"] and logged_in["amr"]
    assert sorted((d["kind"], d["client_id"], d["outcome"]) for d in actions["approval.decide"]) == [
        ("formfill", rp["client_id"], "approved"), ("login", rp["client_id"], "approved"), ("sign", rp["client_id"], "approved")]
    [released] = actions["formfill.release"]
    assert (released["client_id"], released["request_id"], released["fields"]) == (rp["client_id"], asked["request_id"], ["name_en", "email"])
    assert len(released["purpose_sha256"]) == 64
    [signed] = actions["signature.create"]
    assert (signed["client_id"], signed["request_id"], signed["kind"]) == (rp["client_id"], to_sign["request_id"], "cms")
    [sent_record] = actions["notification.send"]
    assert (sent_record["client_id"], sent_record["outcome"]) == (rp["client_id"], "delivered")
    assert [(n["notification_id"], n["template_id"]) for n in sent_record["notifications"]
            if n["account_id"] == app.profile.account_id] == [(notification_id, template["template_id"])]
    assert [d["notification_id"] for d in actions["notification.read"]] == [notification_id]
    no_personal_data(trail, person["name_en"], person["name_zh"], person["id_number"], person["phone"], person["email"],
                     person["address"], "tenancy.txt", "H-7")


async def test_a_mix_of_the_two_modes_is_what_the_sdk_cannot_read(infra):
    """Why no ce_ header goes with a structured record: the SDK takes any ce_ header for binary mode. The relay's
    former headers (ce_type and ce_id beside the JSON) are refused; a full set of them misreads the event."""
    topic = (await new_topic(infra.kafka_bootstrap, "mixed")).name
    event = CloudEvent(source="/auth", type="login.succeeded", subject="rp-1", data={"sub": "s-1"})
    required = [("ce_specversion", b"1.0"), ("ce_id", event.id.encode()), ("ce_source", b"/auth"), ("ce_type", b"login.succeeded")]
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap})
    for headers in (STRUCTURED, STRUCTURED + [("ce_type", b"login.succeeded"), ("ce_id", event.id.encode())], STRUCTURED + required):
        producer.produce(topic, value=event.to_json(), key=b"rp-1", headers=headers)
    assert producer.flush(30) == 0
    records = await asyncio.to_thread(librdkafka_records, infra.kafka_bootstrap, topic, f"mixed-{uuid.uuid4().hex[:8]}", 3)
    read = [_message(r) for r in sorted(records, key=lambda r: len(r.headers()))]

    assert ce_kafka.from_kafka_event(read[0]).get_data() == {"sub": "s-1"}  # structured: read as published
    with pytest.raises(CloudEventValidationError):
        ce_kafka.from_kafka_event(read[1])  # taken for binary mode: no ce_source, no ce_specversion
    misread = ce_kafka.from_kafka_event(read[2])
    assert misread.get_datacontenttype() == "application/cloudevents+json"
    assert misread.get_data() != {"sub": "s-1"} and misread.get_data()["data"] == {"sub": "s-1"}  # the whole envelope as data


async def _audit_trail(platform, account_id: str) -> list[dict]:
    """Every service's audit records about the account: its own (subject) and the agencies' sends listing it."""
    trail = []
    for service in PUBLISHERS:
        for record in await audit_records(platform, service):
            listed = {n.get("account_id") for n in record["data"].get("notifications", [])}
            if record["subject"] == account_id or account_id in listed:
                trail.append(record)
    return trail


async def _inbox_item(app, notification_id: str):
    return [m for m in await app.inbox() if m.get("notification_id") == notification_id]


def _message(record) -> ce_kafka.KafkaMessage:
    return ce_kafka.KafkaMessage(headers=dict(record.headers() or ()), key=record.key(), value=record.value())

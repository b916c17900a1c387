"""CloudEvents envelope and the topic registry, and the catalogue in docs/events.md."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cloudevents.core.formats.json import JSONFormat

from libs.events import ALL_TOPICS, CloudEvent, InvalidEnvelope, agency_topic, dlq_name

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_envelope_round_trips_with_all_required_attributes():
    event = CloudEvent(source="/auth", type="identity.enrolled", subject="acct-1", data={"sealed": "x"})
    raw = json.loads(event.to_json())
    assert raw["specversion"] == "1.0"
    assert {"id", "source", "type", "subject", "time", "datacontenttype", "data", "traceparent"} <= raw.keys()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", raw["traceparent"])
    assert CloudEvent.from_json(event.to_json()) == event


def test_envelope_is_the_cloudevents_json_format_as_the_official_sdk_reads_it():
    hong_kong = timezone(timedelta(hours=8))
    event = CloudEvent(source="/formfill", type="consent.granted", subject="rcpt-1", data={"fields": ["email"]},
                       time=datetime(2030, 1, 1, 8, 0, 0, 250_000, tzinfo=hong_kong))
    raw = json.loads(event.to_json())
    assert raw["time"] == "2030-01-01T00:00:00.250000Z"  # RFC 3339, in UTC
    assert raw["datacontenttype"] == "application/json" and isinstance(raw["data"], dict)
    extensions = raw.keys() - {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
    assert extensions == {"traceparent"}
    assert all(re.fullmatch(r"[a-z0-9]{1,20}", name) for name in extensions)

    read = JSONFormat().read(None, event.to_json())  # validates names and values as the spec says
    assert (read.get_id(), read.get_source(), read.get_type(), read.get_subject()) == (event.id, "/formfill", "consent.granted", "rcpt-1")
    assert read.get_time() == event.time and read.get_time().utcoffset() == timedelta(0)
    assert read.get_datacontenttype() == "application/json" and read.get_data() == {"fields": ["email"]}
    assert read.get_extension("traceparent") == event.traceparent


@pytest.mark.parametrize("attributes", [
    {"time": datetime(2030, 1, 1)},  # no offset: not RFC 3339
    {"subject": ""},  # the format forbids an empty subject
    {"source": "not a uri reference"},
    {"datacontenttype": "text/plain"},  # data is always a JSON object
])
def test_what_the_format_forbids_is_refused_when_the_event_is_built(attributes):
    with pytest.raises(ValueError):
        CloudEvent(**{"source": "/auth", "type": "login.succeeded", "time": datetime.now(UTC), **attributes})


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"specversion": "1.0", "source": "/x"}',
        b'{"specversion": "0.3", "source": "/x", "type": "a.b"}',
        b'{"specversion": "1.0", "source": "/x", "type": "a.b", "surprise": 1}',
        b'{"specversion": "1.0", "source": "/x", "type": "Not A Type"}',
    ],
)
def test_anything_else_is_an_invalid_envelope(raw):
    with pytest.raises(InvalidEnvelope):
        CloudEvent.from_json(raw)


def test_topic_names_and_dead_letter_twins():
    assert dlq_name("identity.events") == "identity.events.dlq"
    assert agency_topic("rp-42") == "agency.rp-42.events"
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))


def test_every_topic_and_event_type_is_in_the_catalogue():
    catalogue = DOCS.read_text()
    for topic in ALL_TOPICS:
        assert f"`{topic.name}`" in catalogue, topic.name
        for event_type in topic.event_types:
            assert f"`{event_type}`" in catalogue, event_type

"""CloudEvents envelope and the topic registry, and the catalogue in docs/events.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from libs.events import ALL_TOPICS, CloudEvent, InvalidEnvelope, agency_topic, dlq_name

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_envelope_round_trips_with_all_required_attributes():
    event = CloudEvent(source="/auth", type="identity.enrolled", subject="acct-1", data={"sealed": "x"})
    raw = json.loads(event.to_json())
    assert raw["specversion"] == "1.0"
    assert {"id", "source", "type", "subject", "time", "datacontenttype", "data", "traceparent"} <= raw.keys()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", raw["traceparent"])
    assert CloudEvent.from_json(event.to_json()) == event


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

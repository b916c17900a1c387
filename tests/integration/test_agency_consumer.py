"""The example agency consumer on the real broker: each event handled once although the topic holds a copy,
remembered across a restart with its SQLite file, and only structured-mode CloudEvents taken."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from clients.agency_consumer import SeenIds, consume
from libs.events import CloudEvent, agency_topic
from libs.events.kafka import Publisher, Record, ensure_topics
from libs.events.outbox import CLOUDEVENTS_CONTENT_TYPE
from libs.events.topics import Topic

pytestmark = pytest.mark.integration


def _status(n: int) -> CloudEvent:
    return CloudEvent(source="/notify", type="notification.status_changed", subject=f"ntf-{n}",
                      data={"status": "delivered", "n": n})


async def _publish(bootstrap: str, topic: str, records: list[tuple[bytes, tuple]]) -> None:
    """Records as the outbox relay sends them (or otherwise, with other headers), acknowledged by the broker."""
    publisher = Publisher(bootstrap, "agency-consumer-test")
    try:
        results = await publisher.send_all([Record(topic, value, b"k", headers) for value, headers in records])
        assert not any(isinstance(r, BaseException) for r in results), results
    finally:
        await publisher.stop()


STRUCTURED = (("content-type", CLOUDEVENTS_CONTENT_TYPE),)


async def test_a_copy_on_the_topic_is_handled_once_even_after_a_restart(infra, tmp_path):
    client_id = f"agency-{uuid.uuid4().hex[:10]}"
    topic = agency_topic(client_id)
    await ensure_topics(infra.kafka_bootstrap, [Topic(topic, "an agency's topic", partitions=1)])
    first, second, third = _status(1), _status(2), _status(3)
    # The second event twice (a republished record), and a record that is not a structured-mode CloudEvent.
    await _publish(infra.kafka_bootstrap, topic, [
        (first.to_json(), STRUCTURED), (second.to_json(), STRUCTURED), (second.to_json(), STRUCTURED),
        (json.dumps(third.data).encode(), (("ce_id", third.id.encode()),)),
    ])

    handled: list[CloudEvent] = []

    async def handle(event: CloudEvent) -> None:
        handled.append(event)

    store = tmp_path / "seen.sqlite3"
    seen = SeenIds(path=store)
    count = await consume(infra.kafka_bootstrap, client_id, handle, from_beginning=True, max_records=4, seen=seen)
    seen.close()
    assert count == 2
    assert [e.id for e in handled] == [first.id, second.id]
    assert handled[1] == second  # the whole event, as published

    # Restarted with its file, reading the topic again from the start (a new group: offsets lost) while a
    # copy of the first event and a new one arrive: only the new one is handled.
    await _publish(infra.kafka_bootstrap, topic, [(first.to_json(), STRUCTURED), (third.to_json(), STRUCTURED)])
    handled.clear()
    seen = SeenIds(path=store)
    count = await consume(infra.kafka_bootstrap, client_id, handle, from_beginning=True, max_records=6, seen=seen,
                          group=f"{client_id}-restarted")
    seen.close()
    assert (count, [e.id for e in handled]) == (1, [third.id])

    # The command line does the same: each event printed once, the foreign record reported and skipped.
    printed = subprocess.run([sys.executable, "-m", "clients.agency_consumer", "--bootstrap", infra.kafka_bootstrap,
                              "--client-id", client_id, "--group", f"{client_id}-cli", "--from-beginning", "--max", "6",
                              "--seen-db", str(tmp_path / "cli.sqlite3")],
                             capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert [line["id"] for line in lines] == [first.id, second.id, third.id]
    assert lines[0]["data"] == {"status": "delivered", "n": 1}
    assert "not a structured-mode CloudEvent" in printed.stderr

"""A database that pauses for a few seconds — a saturated core, a slow disk — fails no operation in flight.

PyMongo's monitor waits for each streamed heartbeat up to the connect timeout past its due time; a late one marks
the server unknown and closes every connection in use. With the old 2 s margin the growth bench's logins failed
at once with `AutoReconnect: connection is already closed` (docs/operations.md, Growth). Here the heartbeat is
due every second (`heartbeatFrequencyMS=1000`) and the server is frozen for 5 s across several due times: with a
2 s margin the monitor gives up 3 s in and the insert waiting on the frozen server fails; with the platform's
margin it waits, and the insert is done once the server resumes.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from libs.devstack import processes
from libs.store import create_client
from libs.store.monitoring import DatabaseMonitorLog

from ..support.database import database_of_its_own, heartbeat_failures
from ..support.logs import service_logs
from ..support.polling import eventually

PAUSE_S = 5.0


@pytest.fixture
def database(tmp_path):
    with database_of_its_own(tmp_path / "db") as database:
        yield database


async def test_a_five_second_pause_of_the_database_fails_no_operation_in_flight(database):
    service = "pause-test-frozen"
    client = create_client(database.uri, heartbeatFrequencyMS=1000, event_listeners=[DatabaseMonitorLog(service)])
    try:
        collection = client.pause_test.items
        await collection.insert_one({"_id": "before"})
        with database.stalled():
            in_flight = asyncio.ensure_future(collection.insert_one({"_id": "during"}))
            started = time.monotonic()
            await asyncio.sleep(PAUSE_S)
        await asyncio.wait_for(in_flight, timeout=30)
        print(f"\nthe insert waited {time.monotonic() - started:.1f} s on the paused database and was done")
        assert await collection.find_one({"_id": "during"}) == {"_id": "during"}
        assert heartbeat_failures(service) == 0, "the monitor gave the paused server up"
    finally:
        await client.close()


async def test_a_failed_heartbeat_is_logged_and_counted(database, capsys):
    """The database gone: the monitor's failed check — the moment PyMongo resets the connections and operations in
    flight fail — is a warning in the service's log and a count ops can alert on, and so is the database marked
    unavailable, with the error that did it."""
    service = "pause-test"
    with service_logs(service):
        client = create_client(database.uri, event_listeners=[DatabaseMonitorLog(service)])
        try:
            await client.pause_test.items.insert_one({"_id": "before"})
            assert heartbeat_failures(service) == 0
            assert processes.stop(database.spec.pid_file, database.spec.marker)
            await eventually(lambda: heartbeat_failures(service) >= 1 or None, timeout_s=30, interval_s=0.1)
        finally:
            await client.close()
    out = capsys.readouterr()
    logged = out.out + out.err
    (line,) = [line for line in logged.splitlines() if "database heartbeat failed" in line][:1]
    print(line)
    assert "warning" in line and "after_s" in line and "error" in line
    assert "database marked unavailable" in logged

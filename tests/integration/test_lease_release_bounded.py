"""A stopping process gives its leases back within a bound, even when its database does not answer.

The consumers' partition leases (libs/events/partition_leases.py), the outbox relay's (libs/events/outbox.py) and
the audit ledger's appender lease (services/signing/ledger/store.py) are given back at a clean stop so another replica need not wait for them to
lapse. A database that does not answer (here a real TCP listener that accepts and never replies) used to hold the
stop as long as it stayed silent — a signing service in tests/service once took over 60 s to stop in the ledger's
release. Each now gives up after RELEASE_TIMEOUT_S and leaves the lease to lapse.
"""

from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from libs.devstack.processes import free_port
from libs.events.outbox import OutboxRelay
from libs.events.partition_leases import LEASES_COLLECTION, MEMBERS_COLLECTION, RELEASE_TIMEOUT_S, PartitionLeases
from services.signing.ledger.store import Ledger


@pytest.fixture
async def silent_database():
    """A client of a 'database' that accepts connections and never answers (its selection waits far longer than
    the bound, so only the bound can end a call)."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    listener.listen()
    client = AsyncMongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=60_000,
                              connectTimeoutMS=60_000, socketTimeoutMS=60_000)
    try:
        yield client
    finally:
        await client.close()
        listener.close()


async def test_partition_leases_are_given_back_within_the_bound_or_left_to_lapse(silent_database):
    db = silent_database["harbour_test"]
    leases = PartitionLeases(db[LEASES_COLLECTION], db[MEMBERS_COLLECTION], group="g", owner="stopping", ttl_s=10)
    started = time.monotonic()
    with pytest.raises(PyMongoError):
        await asyncio.wait_for(leases.release(), 30)
    assert time.monotonic() - started < RELEASE_TIMEOUT_S + 3


async def test_the_ledger_gives_its_lease_back_within_the_bound(silent_database):
    ledger = Ledger(silent_database, silent_database["harbour_test"])
    started = time.monotonic()
    await asyncio.wait_for(ledger.release_lease(), 30)  # gives up quietly: the lease lapses by itself
    assert time.monotonic() - started < RELEASE_TIMEOUT_S + 3


async def test_the_outbox_relay_gives_its_lease_back_within_the_bound(silent_database):
    # Its producer is never used here: nothing is published, only the lease given back.
    relay = OutboxRelay(silent_database["harbour_test"], SimpleNamespace(bootstrap="127.0.0.1:9", client_id="unused"),
                        service="test")
    started = time.monotonic()
    await asyncio.wait_for(relay.release_lease(), 30)  # gives up quietly: the lease expires by itself
    assert time.monotonic() - started < RELEASE_TIMEOUT_S + 3

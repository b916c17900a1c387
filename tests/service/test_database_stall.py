"""A stalled database (SIGSTOP) is 503 with Retry-After within the request deadline, and the same request
succeeds once the database resumes (SIGCONT).

auth runs in process on a database server of this test's own, so freezing it disturbs no other test. A
registration is a transaction (client + outbox event); reading it back is a plain read: both wait on the
database, and without a deadline both would hang for as long as it stays frozen (a transaction retries for up
to 120 s), past the gateway's 30 s.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from ..support.database import database_of_its_own
from ..support.polling import eventually

DEADLINE_S = 2.0
# The deadline, and room for a loaded test machine; the old behaviour (a hang) is far above it.
ANSWERED_WITHIN_S = DEADLINE_S + 3.0
CLIENT = {"client_name": "Stall Test", "redirect_uris": ["http://127.0.0.1:8765/cb"], "scope": "openid"}


async def _timed(call) -> tuple[aiohttp.ClientResponse, float, bytes]:
    started = time.monotonic()
    # A bound of the test's own, so a hanging service fails the test instead of hanging it.
    response = await asyncio.wait_for(call, timeout=20)
    body = await response.read()
    return response, time.monotonic() - started, body


def _unavailable(response: aiohttp.ClientResponse, elapsed: float, body: bytes) -> None:
    assert response.status == 503, body
    assert response.content_type == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed < ANSWERED_WITHIN_S, f"answered after {elapsed:.1f} s"


@pytest.fixture
def database(tmp_path):
    """Requested before start_service, so it stops after the service has (which needs it to stop cleanly)."""
    with database_of_its_own(tmp_path / "db") as database:
        yield database


async def test_a_stalled_database_is_503_with_retry_after_and_recovers(database, start_service):
    auth = await start_service("auth", MONGO_URI=database.uri, MONGO_REQUEST_TIMEOUT_S=str(DEADLINE_S))
    registered = await auth.post("/v1/clients", json=CLIENT)
    assert registered.status == 201, await registered.text()
    client = await registered.json()
    read_path = f"/v1/clients/{client['client_id']}"
    manager = {"Authorization": f"Bearer {client['registration_access_token']}"}
    assert (await auth.get(read_path, headers=manager)).status == 200

    with database.stalled():
        _unavailable(*await _timed(auth.post("/v1/clients", json=CLIENT)))
        _unavailable(*await _timed(auth.get(read_path, headers=manager)))
        # The process itself is fine: liveness stays green while the database is frozen.
        assert (await auth.get("/healthz")).status == 200

    async def registers_again():
        response = await auth.post("/v1/clients", json=CLIENT)
        return response.status == 201 or None

    await eventually(registers_again, timeout_s=30, interval_s=0.5)
    assert (await auth.get(read_path, headers=manager)).status == 200

"""auth's clients from memory: a token request reads nothing from the database, and a client changed or deleted
through one auth replica is refused by another within the revocation list's bound (about 2 s), through
clients.events. Two auths on one database, a real broker and database."""

from __future__ import annotations

import time
import uuid

import pytest
from pymongo import monitoring

from services.auth.clients.directory import directory_of
from services.auth.callers import AUTH

from ...support.database import CommandRecorder
from ...support.polling import eventually
from .oidc_steps import basic

BOUND_S = 2.0
AGENCY = {"client_name": "Water Supplies Department", "kind": "agency", "scope": "notify", "redirect_uris": []}


async def client_token(service, client_id: str, secret: str) -> int:
    response = await service.post("/oidc/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret))
    return response.status


async def registered(service) -> dict:
    response = await service.post("/v1/clients", json=AGENCY)
    assert response.status == 201, await response.text()
    return await response.json()


@pytest.fixture
async def two_auths(start_service):
    database = f"test_clients_{uuid.uuid4().hex[:8]}"
    return await start_service("auth", AUTH_DB=database), await start_service("auth", AUTH_DB=database)


async def within_bound(predicate) -> float:
    started = time.monotonic()
    await eventually(predicate, timeout_s=10, interval_s=0.02)
    return time.monotonic() - started


async def test_a_token_request_reads_nothing_from_the_database(start_service):
    database = f"test_clients_{uuid.uuid4().hex[:8]}"
    recorder = CommandRecorder()
    monitoring.register(recorder)  # before auth makes its database client
    auth = await start_service("auth", AUTH_DB=database)
    agency = await registered(auth)
    directory = directory_of(auth.server.app[AUTH].db)
    await eventually(lambda: directory.trusted, timeout_s=30)  # the follower is positioned on clients.events
    await eventually(lambda: directory.events >= 1, timeout_s=10)  # its client.registered came back
    assert await client_token(auth, agency["client_id"], agency["client_secret"]) == 200  # first read: kept
    reads = directory.reads
    with recorder.recording(database) as seen:
        for _ in range(50):
            assert await client_token(auth, agency["client_id"], agency["client_secret"]) == 200
    commands = [(name, collection) for name, collection, _ in seen]
    # The background (outbox relay, consumers' leases, the signing keys' version check) may talk to the
    # database meanwhile; nothing the token endpoint needs did: no client read, no key read.
    per_request = [c for c in commands if c[1] in ("clients", "token_keys") and c != ("find", "token_keys")]
    assert per_request == [] and directory.reads == reads
    assert len([c for c in commands if c == ("find", "token_keys")]) <= 2  # the version check, every 5 s


async def test_a_client_changed_or_deleted_on_one_replica_is_refused_by_the_other_within_the_bound(two_auths):
    writer, other = two_auths
    for replica in two_auths:
        await eventually(lambda: directory_of(replica.server.app[AUTH].db).trusted, timeout_s=30)
    agency = await registered(writer)
    client_id, old_secret = agency["client_id"], agency["client_secret"]
    await eventually(lambda: directory_of(other.server.app[AUTH].db).events >= 1, timeout_s=10)
    assert await client_token(other, client_id, old_secret) == 200
    reads = directory_of(other.server.app[AUTH].db).reads
    assert await client_token(other, client_id, old_secret) == 200
    assert directory_of(other.server.app[AUTH].db).reads == reads  # from memory

    # A new secret, through the writer: the old one is refused there at once, and by the other within the bound.
    rotated = await writer.put(f"/v1/clients/{client_id}", json={**AGENCY, "rotate_client_secret": True},
                               headers={"Authorization": f"Bearer {agency['registration_access_token']}"})
    assert rotated.status == 200, await rotated.text()
    update = await rotated.json()
    assert await client_token(writer, client_id, old_secret) == 401
    took = await within_bound(lambda: _refused(other, client_id, old_secret))
    assert took < BOUND_S, f"the old secret still worked at the other replica after {took:.2f} s"
    assert await client_token(other, client_id, update["client_secret"]) == 200

    # Deleted through the writer: refused there at once, and by the other within the bound.
    deleted = await writer.delete(f"/v1/clients/{client_id}",
                                  headers={"Authorization": f"Bearer {update['registration_access_token']}"})
    assert deleted.status == 204
    assert await client_token(writer, client_id, update["client_secret"]) == 401
    took = await within_bound(lambda: _refused(other, client_id, update["client_secret"]))
    assert took < BOUND_S, f"the deleted client still got tokens at the other replica after {took:.2f} s"


async def _refused(service, client_id: str, secret: str) -> bool:
    return await client_token(service, client_id, secret) == 401

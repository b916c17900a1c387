"""The dev database's TTL monitor on the real local database: what each TTL index has expired goes, through a ranged
delete; what it has not (a later date, no date, outside a partial index, a collection without TTL) stays; and the
database process removes expired documents by itself with SecantusDB's own sweep off."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo import ASCENDING, MongoClient

from libs.devstack.ttl_monitor import expiry_filter, sweep_once
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_only_what_a_ttl_index_has_expired_is_deleted(infra):
    client = MongoClient(infra.mongo_uri, directConnection=True)
    db = client[f"ttlmon_{uuid.uuid4().hex[:8]}"]
    try:
        now = datetime.now(UTC)
        db.sessions.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
        db.logs.create_index([("created_at", ASCENDING)], expireAfterSeconds=3600)
        db.marked.create_index([("at", ASCENDING)], expireAfterSeconds=0, partialFilterExpression={"done": True})
        db.plain.create_index([("at", ASCENDING)])
        db.sessions.insert_many([
            {"_id": "past", "expires_at": now - timedelta(seconds=5)},
            {"_id": "future", "expires_at": now + timedelta(minutes=5)},
            {"_id": "text", "expires_at": "2000-01-01"},
            {"_id": "none"},
            {"_id": "array", "expires_at": [now + timedelta(days=1), now - timedelta(days=1)]},
        ])
        db.logs.insert_many([{"_id": "old", "created_at": now - timedelta(hours=2)},
                             {"_id": "recent", "created_at": now - timedelta(minutes=30)}])
        db.marked.insert_many([{"_id": "done", "at": now - timedelta(days=1), "done": True},
                               {"_id": "open", "at": now - timedelta(days=1), "done": False}])
        db.plain.insert_one({"_id": "kept", "at": now - timedelta(days=1)})

        assert sweep_once(client, now) >= 4
        assert sorted(d["_id"] for d in db.sessions.find()) == ["future", "none", "text"]
        assert [d["_id"] for d in db.logs.find()] == ["recent"]
        assert [d["_id"] for d in db.marked.find()] == ["open"]
        assert [d["_id"] for d in db.plain.find()] == ["kept"]
    finally:
        client.drop_database(db.name)
        client.close()


def test_indexes_that_are_not_ttl_indexes_expire_nothing():
    now = datetime.now(UTC)
    assert expiry_filter({"key": {"at": 1}}, now) is None
    assert expiry_filter({"key": {"_id": 1}, "expireAfterSeconds": 0}, now) is None
    assert expiry_filter({"key": {"a": 1, "b": 1}, "expireAfterSeconds": 0}, now) is None
    assert expiry_filter({"key": {"at": "hashed"}, "expireAfterSeconds": 0}, now) is None
    assert expiry_filter({"key": {"at": 1}, "expireAfterSeconds": -1}, now) is None
    assert expiry_filter({"key": {"at": 1}, "expireAfterSeconds": True}, now) is None
    assert expiry_filter({"key": {"at": 1}, "expireAfterSeconds": 60}, now) == {"at": {"$lt": now - timedelta(seconds=60)}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_dev_database_removes_expired_documents_itself(tmp_path):
    port = _free_port()
    (tmp_path / "work").mkdir()
    server = subprocess.Popen([sys.executable, "-m", "libs.devstack.mongo_server", "--port", str(port),
                               "--data-dir", str(tmp_path / "data"), "--ttl-sweep-s", "0.5"],
                              cwd=tmp_path / "work", env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        client = MongoClient(f"mongodb://127.0.0.1:{port}/?retryWrites=false", directConnection=True,
                             serverSelectionTimeoutMS=30_000)
        db = client.ttlmon
        db.codes.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
        db.codes.insert_many([{"_id": "expired", "expires_at": datetime.now(UTC) - timedelta(seconds=1)},
                              {"_id": "valid", "expires_at": datetime.now(UTC) + timedelta(hours=1)}])
        await eventually(lambda: db.codes.count_documents({"_id": "expired"}) == 0, timeout_s=30)
        assert db.codes.count_documents({"_id": "valid"}) == 1
        client.close()
    finally:
        server.terminate()
        server.wait(30)

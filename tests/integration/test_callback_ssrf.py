"""Status callbacks and jwks_uri against the real database and a real receiver, with loopback NOT allowed.

The shared test platform allows loopback (its receivers live on 127.0.0.1),
so the refusal of loopback at connection time is shown here: notify's
callback sender and auth's jwks_uri fetch, in process, with
HARBOUR_OUTBOUND_ALLOW_LOOPBACK off. Only the name service is faked (to
make a name answer 127.0.0.1: DNS rebinding); the database and the HTTP
receiver are real.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from libs.clock import SystemClock
from libs.devstack.processes import free_port
from libs.outbound import Outbound
from libs.store import apply_indexes, create_client
from services.auth.oidc import client_auth
from services.auth.oidc.errors import InvalidClient
from services.notify.callbacks import send_due
from services.notify.collections import CALLBACKS, INDEXES

pytestmark = pytest.mark.integration


class Rebinding(AbstractResolver):
    """Answers 127.0.0.1 for every name (a public name an attacker points at the loopback after registering it)."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


class Signer:
    async def sign(self, claims, typ):
        return "header.payload.signature"


@pytest.fixture
async def receiver():
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"keys": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, hits
    await runner.cleanup()


async def test_a_loopback_callback_is_not_called_when_loopback_is_not_allowed(infra, receiver, monkeypatch):
    monkeypatch.delenv("HARBOUR_OUTBOUND_ALLOW_LOOPBACK", raising=False)
    port, hits = receiver
    client = create_client(infra.mongo_uri)
    db = client[infra.settings("callback-ssrf").database]
    await apply_indexes(db, INDEXES)
    now = datetime.now(UTC)
    urls = {"cb-literal": f"http://127.0.0.1:{port}/status", "cb-https": f"https://127.0.0.1:{port}/status",
            "cb-rebound": f"https://agency.example:{port}/status"}
    await db[CALLBACKS].insert_many([
        {"_id": cid, "client_id": "agency-1", "url": url, "payload": {"status": "delivered"}, "state": "pending",
         "attempts": 0, "next_attempt_at": now} for cid, url in urls.items()])
    notify = SimpleNamespace(db=db, signer=Signer(), clock=SystemClock(),
                             settings=SimpleNamespace(callback_timeout_s=2.0, callback_max_attempts=1, callback_backoff_s=1.0))
    try:
        assert await send_due(notify, Outbound(resolver=Rebinding())) == 3
        docs = {d["_id"]: d async for d in db[CALLBACKS].find({})}
        assert hits == []  # nothing reached the receiver
        assert all(d["state"] == "given_up" for d in docs.values())
        assert "https" in docs["cb-literal"]["last_error"]
        assert "127.0.0.1" in docs["cb-https"]["last_error"] and "127.0.0.1" in docs["cb-rebound"]["last_error"]
        # The same sender with loopback allowed (the dev stack's setting) does reach it: the refusal above was the policy's.
        await db[CALLBACKS].update_one({"_id": "cb-literal"}, {"$set": {"state": "pending", "attempts": 0, "next_attempt_at": datetime.now(UTC)}})
        assert await send_due(notify, Outbound(allow_loopback=True)) == 1
        assert hits == ["/status"]
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_jwks_uri_on_loopback_is_not_fetched_when_loopback_is_not_allowed(receiver, monkeypatch):
    monkeypatch.delenv("HARBOUR_OUTBOUND_ALLOW_LOOPBACK", raising=False)
    monkeypatch.setattr(client_auth, "_outbound", None, raising=False)
    port, hits = receiver
    for uri in (f"http://127.0.0.1:{port}/jwks", f"https://127.0.0.1:{port}/jwks", f"https://[::ffff:127.0.0.1]:{port}/jwks"):
        with pytest.raises(InvalidClient):
            await client_auth.fetch_jwks(uri)
    monkeypatch.setattr(client_auth, "_outbound", Outbound(resolver=Rebinding()))
    with pytest.raises(InvalidClient):
        await client_auth.fetch_jwks(f"https://rp.example:{port}/jwks")
    assert hits == []
    # As a process with loopback allowed (the dev stack's setting): a fresh transport and no remembered attempts.
    monkeypatch.setattr(client_auth, "_outbound", Outbound(allow_loopback=True))
    monkeypatch.setattr(client_auth, "_jwks_caches", {})
    assert await client_auth.fetch_jwks(f"http://127.0.0.1:{port}/jwks") == {"keys": []}
    assert hits == ["/jwks"]

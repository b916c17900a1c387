"""The live approvals stream (GET /v1/approvals/stream) through the gateway, with every service up.

A prompt queued by auth's consumer of formfill's `approval.requested` (another
task than the HTTP handler, through Kafka) reaches the stream opened before it
existed; a revoked device's stream closes by itself; one stream more than a
device may hold is 429; the reference app's link journey waits on the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from ..support.calls import device_auth
from ..support.citizens import enrolled_app
from ..support.formfill import FIELDS, created
from ..support.oidc import register, token_request

pytestmark = pytest.mark.e2e
STREAM = "/v1/approvals/stream"


async def next_event(response: aiohttp.ClientResponse, timeout_s: float = 20) -> dict:
    """The next event (`event`, `id`, `data` decoded) or comment (`comment`) on the stream."""
    event: dict = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), timeout_s)).decode()
        if line == "":
            return {"ended": True}
        line = line.rstrip("\n")
        if line.startswith(":") and not event:
            return {"comment": line[1:].strip()}
        if line.startswith(("id: ", "event: ", "data: ")):
            name, _, value = line.partition(": ")
            event[name] = json.loads(value) if name == "data" else value
        elif not line and event:
            return event


def rp_token(platform, metadata) -> str:
    rp = register(platform, client_name="Harbour Pool", scope="openid formfill", formfill_fields=FIELDS)
    return token_request(metadata, rp, grant_type="client_credentials", scope="formfill").json()["access_token"]


async def test_a_formfill_prompt_arrives_on_the_open_stream(platform, kiosk, metadata, tmp_path):
    phone = await enrolled_app(platform, kiosk, tmp_path, "phone")
    request = await created(platform, rp_token(platform, metadata), [("name_en", True)])
    token = await phone.device_token()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
        async with session.get(platform.gateway + STREAM, headers=device_auth(phone, token, "GET", platform.gateway + STREAM)) as stream:
            assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
            assert await next_event(stream) == {"comment": "connected"}
            # No prompt yet: the claim makes formfill publish approval.requested, which auth's consumer queues.
            async with session.post(f"{platform.gateway}/v1/formfill/requests/{request['request_id']}/claim", json={},
                                    headers=device_auth(phone, token, "POST", f"{platform.gateway}/v1/formfill/requests/{request['request_id']}/claim")) as claim:
                assert claim.status == 201, await claim.text()
                approval_id = (await claim.json())["approval_id"]
            event = await next_event(stream)
            while "event" not in event:  # heartbeats, `retry:`
                event = await next_event(stream)
    assert event["event"] == "prompt" and event["id"] == approval_id
    assert event["data"]["approval_id"] == approval_id and event["data"]["kind"] == "formfill"
    assert event["data"]["expires_at"].startswith("20")
    assert set(event["data"]) == {"approval_id", "kind", "expires_at"}  # the content is fetched by id
    assert (await phone.show(approval_id))["status"] == "pending"


async def test_a_prompt_another_process_queued_arrives(platform, kiosk, tmp_path):
    """Written straight into auth's database by this test's process, as another auth replica would queue it:
    the stream's feed reads the database's change stream, not its own process's inserts."""
    phone = await enrolled_app(platform, kiosk, tmp_path, "phone")
    token = await phone.device_token()
    mongo = AsyncMongoClient(platform.infra.mongo_uri)
    approval_id = f"test-{uuid.uuid4().hex}"
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
            async with session.get(platform.gateway + STREAM, headers=device_auth(phone, token, "GET", platform.gateway + STREAM)) as stream:
                assert await next_event(stream) == {"comment": "connected"}
                await mongo[platform.database("auth")]["approvals"].insert_one({
                    "_id": approval_id, "account_id": phone.profile.account_id, "status": "pending",
                    "request": {"approval_id": approval_id, "action": "sign"}, "expires_at": expires_at})
                event = await next_event(stream)
                while "event" not in event:
                    event = await next_event(stream)
    finally:
        await mongo[platform.database("auth")]["approvals"].delete_one({"_id": approval_id})
        await mongo.close()
    assert event["data"] == {"approval_id": approval_id, "kind": "sign", "expires_at": expires_at.isoformat()}


async def test_the_apps_link_journey_waits_on_the_stream(platform, kiosk, metadata, tmp_path):
    phone = await enrolled_app(platform, kiosk, tmp_path, "phone")
    request = await created(platform, rp_token(platform, metadata), [("name_en", True)])
    opened = await phone.open_link(request["app_link"])
    assert opened["prompt"]["approval_id"] == f"formfill-{request['request_id']}"
    assert opened["prompt"]["status"] == "pending" and opened["status"] == "approved"


async def test_a_revoked_devices_stream_closes(platform, kiosk, tmp_path):
    phone = await enrolled_app(platform, kiosk, tmp_path, "phone")
    token = await phone.device_token()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
        async with session.get(platform.gateway + STREAM, headers=device_auth(phone, token, "GET", platform.gateway + STREAM)) as stream:
            assert stream.status == 200
            assert await next_event(stream) == {"comment": "connected"}
            await phone.revoke(phone.profile.device_id)
            revoked_at = time.monotonic()
            seen = [await next_event(stream, timeout_s=10)]
            while "ended" not in seen[-1]:
                seen.append(await next_event(stream, timeout_s=10))
            assert time.monotonic() - revoked_at < 5, seen
    assert {"comment": "closed: the device has been revoked"} in seen


async def test_one_stream_more_than_a_device_may_hold_is_429(platform, kiosk, tmp_path):
    phone = await enrolled_app(platform, kiosk, tmp_path, "phone")
    token = await phone.device_token()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
        held = []
        try:
            for _ in range(3):
                held.append(await session.get(platform.gateway + STREAM, headers=device_auth(phone, token, "GET", platform.gateway + STREAM)))
                assert held[-1].status == 200
            async with session.get(platform.gateway + STREAM, headers=device_auth(phone, token, "GET", platform.gateway + STREAM)) as fourth:
                assert fourth.status == 429 and fourth.content_type == "application/problem+json"
                assert (await fourth.json(content_type=None))["type"].endswith("/too-many-streams")
                assert int(fourth.headers["Retry-After"]) >= 1
        finally:
            for response in held:
                response.close()

"""Helpers for citizen journeys: identity data, selfies, kiosks, prompts, and reading the whole run back."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
import bson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from PIL import Image

from clients.citizen_app import CitizenApp, Profile
from libs.approvals import ApprovalRequest, Requester, seal_prompt
from libs.events import CloudEvent
from libs.events.topics import APPROVAL_REQUESTED
from services.auth.identity.hkid import check_digit


def random_hkid() -> str:
    prefix = random.choice("ABCDEGHKMPRVWYZ")
    digits = f"{random.randrange(10**6):06d}"
    return f"{prefix}{digits}({check_digit(prefix, digits)})"


def wrong_check_digit(hkid: str) -> str:
    right = hkid[-2]
    wrong = next(c for c in "0123456789A" if c != right)
    return hkid[:-2] + wrong + ")"


def selfie(size: int = 160) -> bytes:
    """A photographic-enough PNG: random noise, so every selfie's bytes are unique."""
    image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def identity(**overrides) -> dict:
    data = {
        "id_number": random_hkid(),
        "name_en": f"CHAN Tai Man {uuid.uuid4().hex[:6].upper().replace('0', 'X').translate(str.maketrans('123456789', 'ABCDEFGHJ'))}",
        "name_zh": "陳大文",
        "date_of_birth": (date(1950, 1, 1) + timedelta(days=random.randrange(15000))).isoformat(),
        "gender": "M",
        "phone": f"+8529{random.randrange(10**7):07d}",
        "email": f"citizen-{uuid.uuid4().hex[:8]}@example.hk",
        "address": "Flat 12A, 8 Harbour Road, Wan Chai, Hong Kong",
        "language": "zh-HK",
    }
    data.update(overrides)
    return data


def admin(platform, *args: str) -> subprocess.CompletedProcess:
    """auth's operator command, run with the services' environment."""
    return subprocess.run(
        [sys.executable, "-m", "services.auth.admin", *args], env=platform.env(), capture_output=True, text=True, timeout=60
    )


def create_kiosk(platform) -> tuple[str, str]:
    result = admin(platform, "create-client", "--kind", "kiosk", "--name", "Kiosk Central", "--scope", "enrol")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    return created["client_id"], created["client_secret"]


def cli(platform, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.citizen_app", "--profile", str(profile), "--gateway", platform.gateway, *args],
        env=platform.env(), capture_output=True, text=True, timeout=60,
    )


def approval_request(account_id: str, *, expires_in_s: int = 300, purpose: str = "Log in to the Example Portal") -> ApprovalRequest:
    return ApprovalRequest(
        approval_id=f"appr-{uuid.uuid4().hex}",
        account_id=account_id,
        action="test",
        requester=Requester(service="e2e", client_id="rp-example", client_name="Example Portal"),
        purpose=purpose,
        details={"fields": ["name_en", "email"]},
        matching_code="4821",
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in_s),
    )


async def publish_prompt(platform, request: ApprovalRequest) -> None:
    """What formfill or signing does: publish approval.requested, its free text sealed to auth (here straight to the topic)."""
    auth_key = json.loads(platform.env()["HARBOUR_AUTH_SEALING_PUBLIC_JWK"])
    event = CloudEvent(source="/e2e", type="approval.requested", subject=request.approval_id, data=seal_prompt(request, auth_key))
    producer = AIOKafkaProducer(bootstrap_servers=platform.infra.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(APPROVAL_REQUESTED.name, event.to_json(), key=request.approval_id.encode())
    finally:
        await producer.stop()


async def all_messages(bootstrap: str, topics: list[str] | None = None) -> list:
    """Every message of `topics` (default: every topic on the broker), from the beginning to the current end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = topics or [t for t in await admin.list_topics() if not t.startswith("__")]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    messages = []
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                messages.extend(batch)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return messages


async def all_documents(mongo_client, database: str) -> list[bytes]:
    """Every document of every collection of `database`, as raw BSON."""
    db = mongo_client[database]
    dumped = []
    for name in await db.list_collection_names():
        async for doc in db[name].find():
            dumped.append(bson.encode(doc))
    return dumped


async def post_json(url: str, body, headers: dict | None = None) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=headers or {}) as response:
            return response.status, dict(response.headers), await response.json(content_type=None)


async def enrolled_app(platform, kiosk, tmp_path: Path, name: str = "phone", *, record=None, person: dict | None = None) -> CitizenApp:
    """A citizen enrolled at the kiosk with an activated device; `record(person, picture)` sees what was sent."""
    person = person or identity()
    picture = selfie()
    if record is not None:
        record(person, picture)
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, picture, kiosk=kiosk)
    app = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / f"{name}.json")
    await app.activate(enrolment["account_id"], enrolment["activation_code"], name)
    return app

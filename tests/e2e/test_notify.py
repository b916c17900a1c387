"""Notifications end to end, through the gateway with every service and the dispatcher as real processes.

Agencies here are relying parties with `openid notify`: a citizen logs in to
them (so the agency learns the citizen's pairwise sub), then the agency uses
its own client-credentials token to send. The crash test seeds its 1,000
recipients straight into notify's projections (enrolling them through the
kiosk would take minutes; `bench/notify.py --kill-dispatcher` runs 10,000);
every other test uses citizens enrolled and logged in through the whole stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest

from libs.devstack import processes
from libs.events import agency_topic

from ..support.broker import all_messages
from ..support.calls import refusal
from ..support.database import mongo
from ..support.notify import Agency, CallbackReceiver, citizen_of
from ..support.polling import eventually
from ..support.prompts import approval_request, publish_prompt

pytestmark = pytest.mark.e2e
KILL_TEST_RECIPIENTS = 1_000


async def test_send_stream_read_callback_and_topic(platform, kiosk, metadata, tmp_path):
    agency = Agency(platform, metadata, "Transport Department", agency_events=True)  # it reads its topic (below)
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "phone")
    template = await agency.template()
    assert template["version"] == 1

    async with CallbackReceiver(platform, agency.client_id) as receiver:
        assert agency.call("PUT", "/v1/notifications/callback", {"url": receiver.url}).status_code == 200
        stream = app.stream()
        assert (await asyncio.wait_for(anext(stream), 20)) == {"comment": "connected"}
        next_message = asyncio.ensure_future(_next_message(stream))

        key = str(uuid.uuid4())
        body = {"template_id": template["template_id"], "sub": sub, "reference": "R-1",
                "personalisation": {"name": "Chan Tai Man", "licence": "DL-42"}}
        sent = await agency.send(body, **{"Idempotency-Key": key})
        assert sent.status_code == 201, sent.text
        notification_id = sent.json()["notification_id"]
        assert sent.json()["template_version"] == 1

        # The citizen enrolled in zh-HK: the live stream shows the message rendered in that language.
        message = await asyncio.wait_for(next_message, 30)
        await stream.aclose()
        assert message["notification_id"] == notification_id
        assert message["subject"] == "續期牌照 DL-42" and "Chan Tai Man" in message["body"] and message["language"] == "zh-HK"
        assert message["from"] == "Transport Department"
        assert agency.status(notification_id)["status"] == "delivered"

        # The same key again: the same answer (a replay), not a second notification; the key with another body is refused.
        again = await agency.send(body, **{"Idempotency-Key": key})
        assert again.status_code == 201 and again.json() == sent.json() and again.headers["Idempotent-Replayed"] == "true"
        other = await agency.send({**body, "reference": "R-2"}, **{"Idempotency-Key": key})
        assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")

        # Read on the phone.
        assert (await app.read(message["id"]))["read_at"]
        status = await eventually(lambda: (s := agency.status(notification_id))["status"] == "read" and s, timeout_s=10)
        assert {"created", "sending", "delivered", "read"} <= set(status["timeline"])

        # The callback got delivered and read, signed (after one refused attempt: retried).
        await eventually(lambda: {c["status"] for c in receiver.received if c["notification_id"] == notification_id} >= {"delivered", "read"},
                         timeout_s=30)
        assert receiver.refused == 1
        assert all(c["sub"] == sub and c["reference"] == "R-1" for c in receiver.received)

    # The agency's own topic shows the same two statuses, with its pairwise sub.
    async def on_topic():
        events = [json.loads(m.value) for m in await all_messages(platform.infra.kafka_bootstrap, [agency_topic(agency.client_id)])]
        statuses = {e["data"]["status"] for e in events if e["type"] == "notification.status_changed"}
        return events if {"delivered", "read"} <= statuses and "login.succeeded" in {e["type"] for e in events} else None

    events = await eventually(on_topic, timeout_s=20, interval_s=0.5)
    listed = [n for e in events if e["type"] == "notification.status_changed" for n in e["data"]["notifications"]]
    assert {n["status"] for n in listed} == {"delivered", "read"}
    assert all(n["notification_id"] == notification_id and n["sub"] == sub and n["reference"] == "R-1" for n in listed)

    # The example agency consumer reads the same events from the agency's topic.
    consumed = subprocess.run([sys.executable, "-m", "clients.agency_consumer", "--bootstrap", platform.infra.kafka_bootstrap,
                               "--client-id", agency.client_id, "--from-beginning", "--max", str(len(events))],
                              env=platform.env(), capture_output=True, text=True, timeout=60)
    assert consumed.returncode == 0, consumed.stderr
    printed = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert {"login.succeeded", "notification.status_changed"} <= {p["type"] for p in printed}

    # A service asks for an approval (as formfill and signing do): a high-priority message "approve on your phone".
    await publish_prompt(platform, approval_request(app.profile.account_id, purpose="Open a water account"))

    async def prompted():
        return [m for m in await app.inbox() if m["subject"] == "請在手機上批准：Example Portal"]

    prompt = (await eventually(prompted, timeout_s=20))[0]
    assert prompt["priority"] == "high" and "4821" in prompt["body"]  # the matching code
    # Who asks and the kind of action only: the relying party's free text is sealed to auth, shown in the app alone.
    assert "Open a water account" not in prompt["subject"] + prompt["body"]

    # Security alerts arrive too: a new device (from auth's audit topic, which notify reads behind every other
    # service's audit records, so it may come after the prompt) and a first sign-in to a service.
    async def alerted():
        inbox = await app.inbox()
        subjects = [m["subject"] for m in inbox if m["kind"] == "platform"]
        return inbox if "已啟用新裝置" in subjects and any(s.startswith("首次登入") for s in subjects) else None

    inbox = await eventually(alerted, timeout_s=30, interval_s=0.5)
    # Exactly one inbox item for the agency's message, despite the retried request.
    assert [m["notification_id"] for m in inbox].count(notification_id) == 1
    assert notification_id not in {m["notification_id"] for m in await app.inbox(unread_only=True)}

    # The push channel's local adapter recorded pushes for this citizen (encrypted at rest).
    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("notify")]
        pushes = await eventually(lambda: db["push_log"].count_documents({"account_id": app.profile.account_id}), timeout_s=10)
        assert pushes >= 2
        raw = await db["push_log"].find_one({"notification_id": notification_id})
        assert raw is not None and "DL-42" not in json.dumps(raw, default=str)


async def _next_message(stream):
    async for event in stream:
        if "comment" not in event and event.get("kind") == "agency":
            return event


async def test_opt_out_suppresses_and_a_missing_placeholder_is_refused(platform, kiosk, metadata, tmp_path):
    agency = Agency(platform, metadata, "Water Supplies Department")
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "phone2")
    template = await agency.template()

    def judged():  # once notify has heard of the agency (409 unknown-client until its clients projection has it)
        response = agency.call("POST", "/v1/notifications", {"template_id": template["template_id"], "sub": sub,
                                                               "personalisation": {"name": "Chan"}})
        return None if response.status_code == 409 else [response]

    [missing] = await eventually(judged, timeout_s=30)
    assert refusal(missing, 400, "missing-placeholder")["placeholders"] == ["licence"]

    opted = await app.set_preferences(opted_out=[agency.client_id], language="en")
    assert opted["opted_out"] == [agency.client_id]
    sent = await agency.send({"template_id": template["template_id"], "sub": sub, "personalisation": {"name": "Chan", "licence": "X"}})
    assert sent.status_code == 201, sent.text
    notification_id = sent.json()["notification_id"]
    status = await eventually(lambda: (s := agency.status(notification_id))["status"] == "suppressed" and s, timeout_s=20)
    assert "delivered" not in status["timeline"]
    assert all(m["client_id"] != agency.client_id for m in await app.inbox())
    # Nothing was stored for the refused send: only the suppressed one exists.
    async with mongo(platform.infra.mongo_uri) as client:
        assert await client[platform.database("notify")]["notifications"].count_documents({"client_id": agency.client_id}) == 1


async def test_a_batch_reports_its_progress_by_status_through_to_read(platform, kiosk, metadata, tmp_path):
    agency = Agency(platform, metadata, "Food and Environmental Hygiene Department")
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "phone3")
    template = await agency.template()
    personalisation = {"name": "Chan", "licence": "FL-7"}
    await agency.send({"template_id": template["template_id"], "sub": sub, "personalisation": personalisation})  # notify knows the sub

    def finished(job_id: str):
        return lambda: (p := agency.call("GET", f"/v1/notifications/batch/{job_id}").json())["finished"] and p

    # An opted-out citizen and a sub notify never heard of: one suppressed, one failed.
    assert (await app.set_preferences(opted_out=[agency.client_id]))["opted_out"] == [agency.client_id]
    batch = agency.call("POST", "/v1/notifications/batch", {"template_id": template["template_id"], "recipients": [
        {"sub": sub, "personalisation": personalisation}, {"sub": "nobody-" + uuid.uuid4().hex, "personalisation": personalisation}]})
    assert batch.status_code == 201, batch.text
    progress = await eventually(finished(batch.json()["job_id"]), timeout_s=30)
    assert progress["counts"] == {"delivered": 0, "failed": 1, "suppressed": 1, "read": 0, "pending": 0}
    assert progress["processed"] == progress["total"] == 2 and progress["unknown_recipients"] == 1

    # Opted in again: delivered, then read on the phone moves it from delivered to read.
    assert (await app.set_preferences(opted_out=[]))["opted_out"] == []
    batch = agency.call("POST", "/v1/notifications/batch", {"template_id": template["template_id"], "recipients": [
        {"sub": sub, "personalisation": personalisation}]})
    job_id = batch.json()["job_id"]
    progress = await eventually(finished(job_id), timeout_s=30)
    assert progress["counts"] == {"delivered": 1, "failed": 0, "suppressed": 0, "read": 0, "pending": 0}
    [item] = [m for m in await app.inbox() if m["kind"] == "agency" and not m["read_at"] and m["notification_id"].startswith(
        "ntf-" + job_id.removeprefix("job-"))]
    assert (await app.read(item["id"]))["read_at"]
    counts = await eventually(lambda: (c := agency.call("GET", f"/v1/notifications/batch/{job_id}").json()["counts"])["read"] and c,
                              timeout_s=10)
    assert counts == {"delivered": 0, "failed": 0, "suppressed": 0, "read": 1, "pending": 0}


@pytest.mark.timeout(240)
async def test_a_dispatcher_killed_mid_batch_leaves_exactly_one_inbox_item_per_recipient(platform, metadata):
    """1,000 recipients here, in chunks of 100 (the test platform's chunk size), so the kill lands mid-batch;
    `bench/notify.py --kill-dispatcher` runs the same with 10,000."""
    agency = Agency(platform, metadata, "Inland Revenue Department")
    template = await agency.template({"name": "Tax reminder", "placeholders": ["year"],
                                      "content": {"en": {"subject": "Tax return {{ year }}", "body": "Please file your {{ year }} return."}}})
    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("notify")]
        known = await eventually(lambda: db["clients"].find_one({"_id": agency.client_id}), timeout_s=20)
        run = uuid.uuid4().hex[:8]
        recipients = [(f"sub-{run}-{i}", f"acct-{run}-{i}") for i in range(KILL_TEST_RECIPIENTS)]
        await db["subjects"].insert_many([{"_id": s, "sector": known["sector"], "account_id": a} for s, a in recipients])
        await db["accounts"].insert_many([{"_id": a, "language": "en", "state": "active"} for _, a in recipients])

        response = agency.call("POST", "/v1/notifications/batch", {
            "template_id": template["template_id"],
            "recipients": [{"sub": s, "personalisation": {"year": "2026"}} for s, _ in recipients]})
        assert response.status_code == 201, response.text
        job_id = response.json()["job_id"]
        assert response.json()["total"] == KILL_TEST_RECIPIENTS and response.json()["status"] == "accepted"
        accounts = [a for _, a in recipients]

        # Kill the dispatcher (SIGKILL: no clean shutdown) as soon as delivery has started, then start it again.
        spec = platform.stack.worker_spec("notify-dispatcher")
        pid = processes.running_pid(spec.pid_file, spec.marker)
        assert pid is not None
        mine = {"client_id": agency.client_id}
        delivered_before = await eventually(lambda: db["inbox"].count_documents(mine), timeout_s=60, interval_s=0.02)
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: not processes.is_alive(pid), timeout_s=10)
        assert delivered_before < KILL_TEST_RECIPIENTS
        await asyncio.to_thread(platform.stack.up_worker, "notify-dispatcher")
        started = time.monotonic()
        progress = await eventually(lambda: (p := agency.call("GET", f"/v1/notifications/batch/{job_id}").json())["finished"] and p,
                                    timeout_s=150, interval_s=0.5)
        print(f"\n{KILL_TEST_RECIPIENTS}-recipient batch delivered {time.monotonic() - started:.0f} s after the dispatcher restart")
        assert progress["counts"]["delivered"] == KILL_TEST_RECIPIENTS and progress["processed"] == KILL_TEST_RECIPIENTS
        assert progress["unknown_recipients"] == 0
        rows = await db["inbox"].aggregate([{"$match": mine}, {"$group": {"_id": "$account_id", "n": {"$sum": 1}}}])
        per_account = {row["_id"]: row["n"] async for row in rows}
        assert set(per_account) == set(accounts) and set(per_account.values()) == {1}


async def test_agency_topics_carry_only_their_own_events_and_no_account_id(platform, kiosk, metadata, tmp_path):
    """Every `agency.*` topic on the broker: each event's client and subs belong to that topic's agency; no account id anywhere."""
    # An agency of this test's own sends one notification: an event to check whatever ran before (in the full suite
    # the earlier tests' agency topics were once all read empty: see the session note).
    agency = Agency(platform, metadata, "Topic Auditor", agency_events=True)
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "phone")
    template = await agency.template()
    sent = await agency.send({"template_id": template["template_id"], "sub": sub, "reference": "R-topics",
                              "personalisation": {"name": "Chan Tai Man", "licence": "DL-7"}})
    assert sent.status_code == 201, sent.text
    own = f"agency.{agency.client_id}.events"

    async def own_event_published():
        return bool(await all_messages(platform.infra.kafka_bootstrap, [own])) or None

    await eventually(own_event_published, timeout_s=30, interval_s=0.2)
    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("notify")]
        sectors = {c["_id"]: c["sector"] async for c in db["clients"].find({}, {"sector": 1})}
        sector_of_sub = {s["_id"]: s["sector"] async for s in db["subjects"].find({}, {"sector": 1})}
        account_ids = {a["_id"] async for a in db["accounts"].find({}, {"_id": 1})}
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=platform.infra.kafka_bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith("agency.") and t.endswith(".events")]
    finally:
        await admin.close()
    ours = [t for t in topics if t.removeprefix("agency.").removesuffix(".events") in sectors]
    assert ours, "no agency topic of this run"
    async def read_back():
        # Read until the read includes this test's own event (seen on its topic above): a read of many topics at once
        # has come back empty from the local broker in a full run, which would check nothing.
        messages = await all_messages(platform.infra.kafka_bootstrap, ours)
        return messages if own not in ours or any(m.topic == own for m in messages) else None

    checked = 0
    for message in await eventually(read_back, timeout_s=30, interval_s=0.5):
        client_id = message.topic.removeprefix("agency.").removesuffix(".events")
        event = json.loads(message.value)
        data = event["data"]
        if "client_id" in data:
            assert data["client_id"] == client_id, (message.topic, event["type"])
        for sub in [data.get("sub")] + [n.get("sub") for n in data.get("notifications", [])]:
            if sub:
                assert sector_of_sub.get(sub, sectors[client_id]) == sectors[client_id], (message.topic, event["type"])
        strings = set(_strings(event))
        assert not strings & account_ids, (message.topic, event["type"])
        checked += 1
    assert checked > 0, f"no message read from the {len(ours)} agency topics of this run, e.g. {ours[:3]}"


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


async def test_quiet_hours_hold_normal_messages_but_not_urgent_ones_and_scheduled_sends_wait_for_their_time(
        platform, kiosk, metadata, tmp_path):
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    agency = Agency(platform, metadata, "Hong Kong Observatory")
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "phone4")
    template = await agency.template()
    personalisation = {"name": "Chan", "licence": "WX-1"}
    now_hk = datetime.now(ZoneInfo("Asia/Hong_Kong"))
    start, end = (now_hk - timedelta(minutes=2)).strftime("%H:%M"), (now_hk + timedelta(hours=2)).strftime("%H:%M")
    assert (await app.set_preferences(quiet_hours={"start": start, "end": end}))["quiet_hours"] == {"start": start, "end": end}

    normal = await agency.send({"template_id": template["template_id"], "sub": sub, "personalisation": personalisation})
    urgent = await agency.send({"template_id": template["template_id"], "sub": sub, "personalisation": personalisation,
                                "priority": "high", "reference": "typhoon-8"})
    assert normal.status_code == urgent.status_code == 201
    urgent_id, normal_id = urgent.json()["notification_id"], normal.json()["notification_id"]

    # The urgent one goes through the quiet hours to the inbox; the normal one waits for their end.
    await eventually(lambda: agency.status(urgent_id)["status"] == "delivered", timeout_s=20)
    held = await eventually(lambda: (s := agency.status(normal_id))["status"] == "created" and "sending" in s["timeline"] and s,
                            timeout_s=20)
    due = datetime.fromisoformat(held["due_at"]).astimezone(ZoneInfo("Asia/Hong_Kong"))
    assert due.strftime("%H:%M") == end and due > now_hk
    assert {m["notification_id"] for m in await app.inbox()} & {urgent_id, normal_id} == {urgent_id}

    # A scheduled send: `created` until its time, then delivered (quiet hours off again first).
    assert (await app.set_preferences(quiet_hours=None))["quiet_hours"] is None
    send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)  # whole seconds: the database keeps milliseconds
    scheduled = await agency.send({"template_id": template["template_id"], "sub": sub, "personalisation": personalisation,
                                   "send_at": send_at.isoformat()})
    scheduled_id = scheduled.json()["notification_id"]
    waiting = agency.status(scheduled_id)
    assert waiting["status"] == "created" and datetime.fromisoformat(waiting["due_at"]) == send_at
    delivered = await eventually(lambda: (s := agency.status(scheduled_id))["status"] == "delivered" and s, timeout_s=30)
    assert datetime.fromisoformat(delivered["timeline"]["delivered"]) >= send_at
    assert scheduled_id in {m["notification_id"] for m in await app.inbox()}

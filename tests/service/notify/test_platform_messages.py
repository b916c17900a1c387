"""Platform messages: an approval prompt and security alerts, in the citizen's language, high priority, no opt-out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from libs.approvals import seal_prompt
from aiokafka import AIOKafkaProducer

from libs.events import CloudEvent
from libs.events.topics import APPROVAL_REQUESTED
from services.notify.collections import NOTIFICATIONS
from tests.support.prompts import approval_request


async def platform_inbox(notify, citizen) -> list[dict]:
    await notify.dispatch()
    return [m for m in await notify.inbox(citizen) if m["kind"] == "platform"]


async def test_an_approval_request_becomes_an_approve_on_your_phone_message_without_its_free_text(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency, language="zh-HK")
    request = approval_request(citizen.account_id, purpose="Open a water account")
    sealed = seal_prompt(request, json.loads(notify.secrets["HARBOUR_AUTH_SEALING_PUBLIC_JWK"]))

    await notify.learn(CloudEvent(source="/formfill", type="approval.requested", subject=request.approval_id, data=sealed))

    [prompt] = [m for m in await platform_inbox(notify, citizen) if m["subject"].startswith("請在手機上批准")]
    assert prompt["subject"] == "請在手機上批准：Example Portal" and prompt["priority"] == "high"
    assert "4821" in prompt["body"] and "Open a water account" not in prompt["subject"] + prompt["body"]
    assert (prompt["from"], prompt["client_id"]) == ("Harbour ID", None)


async def test_a_prompt_the_citizens_app_asked_for_calls_nobody_to_the_app(notify):
    # The app opened the request's link (a QR code) and shows the prompt: as for a login opened by QR code, no
    # "approve on your phone" message, and notify's consumer records nothing of the event. The same prompt asked of
    # a logged-in citizen (nothing on the phone yet) is one. Both through the broker, on one partition (one key):
    # once the second is processed, the first has been passed over.
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    key = json.loads(notify.secrets["HARBOUR_AUTH_SEALING_PUBLIC_JWK"])
    from_link, asked = approval_request(citizen.account_id), approval_request(citizen.account_id)
    opened = CloudEvent(source="/signing", type="approval.requested", subject=citizen.account_id,
                        data=seal_prompt(from_link, key, opened_in_app=True))
    producer = AIOKafkaProducer(bootstrap_servers=notify.ctx.settings.service.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(APPROVAL_REQUESTED.name, opened.to_json(), key=citizen.account_id.encode())
    finally:
        await producer.stop()

    await notify.learn_through_broker(CloudEvent(source="/signing", type="approval.requested", subject=citizen.account_id,
                                                 data=seal_prompt(asked, key)), topic=APPROVAL_REQUESTED.name)

    prompts = {"account_id": citizen.account_id, "platform_message": "approval"}
    assert [m["subject"] for m in await platform_inbox(notify, citizen) if m["subject"].startswith("Approve")] == [
        "Approve on your phone: Example Portal"]
    assert await notify.ctx.db[NOTIFICATIONS].count_documents(prompts) == 1
    assert await notify.ctx.db["processed_events"].count_documents({"_id": {"$regex": f":{opened.id}$"}}) == 0
    await notify.learn(opened)  # the handler itself passes it over too, whoever hands it the event
    assert await notify.ctx.db[NOTIFICATIONS].count_documents(prompts) == 1


async def test_a_first_sign_in_to_a_service_and_a_new_device_raise_security_alerts(notify):
    agency = await notify.agency(name="Inland Revenue Department")
    citizen = await notify.citizen(agency)  # its pairwise subject assigned: a first sign-in at this sector
    activated_at = datetime(2030, 1, 1, 1, 30, tzinfo=UTC)

    # Until 2026-12-05 notify read auth's `device.activate` audit record for this: it reads no audit record now.
    await notify.learn(CloudEvent(source="/auth", type="audit.recorded", subject=citizen.account_id, time=activated_at,
                                  data={"action": "device.activate", "service": "auth", "outcome": "success"}))
    assert "A new device was activated" not in {m["subject"] for m in await platform_inbox(notify, citizen)}
    await notify.learn(CloudEvent(source="/auth", type="identity.device_activated", subject=citizen.account_id,
                                  time=activated_at, data={"account_id": citizen.account_id, "device_id": "dev-1",
                                                           "how": "activation code"}))

    subjects = {m["subject"]: m["body"] for m in await platform_inbox(notify, citizen)}
    assert "First sign-in to Inland Revenue Department" in subjects
    assert subjects["A new device was activated"].startswith("A device was activated for your Harbour ID at 2030-01-01 09:30")


async def test_platform_messages_ignore_opt_outs_and_quiet_hours(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    await notify.preferences(citizen, {"opted_out": [agency.client_id], "quiet_hours": {"start": "00:00", "end": "23:59"}})
    request = approval_request(citizen.account_id)
    sealed = seal_prompt(request, json.loads(notify.secrets["HARBOUR_AUTH_SEALING_PUBLIC_JWK"]))

    await notify.learn(CloudEvent(source="/signing", type="approval.requested", subject=request.approval_id, data=sealed))

    assert any(m["subject"].startswith("Approve on your phone") for m in await platform_inbox(notify, citizen))
    statuses = {d["status"] async for d in notify.ctx.db[NOTIFICATIONS].find({"account_id": citizen.account_id, "kind": "platform"})}
    assert statuses == {"delivered"}

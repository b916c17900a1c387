"""E-mail and SMS end to end: through the gateway, the dispatcher process, the dev stack's real SMTP server and SMS sink.

The platform fixture starts the local SMTP server (libs/devstack/smtp_server.py, aiosmtpd) on a free port with a
Maildir of its own; these tests read what it received, as a mailbox would, and the SMS sink's folder. Its reserved
domains act out a server's refusals: `refused.invalid` (550, for good) and `deferred.invalid` (451, try later).
"""

from __future__ import annotations

import asyncio
import email.policy
import json
import mailbox
import uuid
from email import message_from_binary_file

import pytest

from libs.events import agency_topic

from ..support.broker import all_messages
from ..support.calls import refusal
from ..support.database import mongo
from ..support.notify import Agency, citizen_of
from ..support.polling import eventually

pytestmark = pytest.mark.e2e

VALUES = {"name": "Chan Tai Man", "licence": "DL-42"}


def received_mail(platform) -> dict[str, email.message.EmailMessage]:
    """What the platform's SMTP server accepted, by the notification each message carries."""
    box = mailbox.Maildir(platform.stack.config.maildir, factory=lambda f: message_from_binary_file(f, policy=email.policy.default),
                          create=True)
    return {m["X-Harbour-Notification"]: m for m in box}


def received_sms(platform) -> dict[str, dict]:
    folder = platform.stack.config.sms_dir
    return {(sms := json.loads(p.read_text()))["notification_id"]: sms for p in folder.glob("*.json")} if folder.exists() else {}


async def _mail_for(platform, notification_id: str):
    return await eventually(lambda: received_mail(platform).get(notification_id), timeout_s=30, interval_s=0.2)


async def _settled(agency: Agency, notification_id: str, status: str, timeout_s: float = 30) -> dict:
    return await eventually(lambda: (s := agency.status(notification_id))["status"] == status and s, timeout_s=timeout_s, interval_s=0.2)


async def _send(agency: Agency, template: dict, sub: str, **extra) -> str:
    sent = await agency.send({"template_id": template["template_id"], "sub": sub, "personalisation": VALUES, **extra})
    assert sent.status_code == 201, sent.text
    return sent.json()["notification_id"]


async def test_an_email_reaches_the_smtp_server_and_its_receipt_makes_the_notification_delivered(platform, kiosk, metadata, tmp_path):
    agency = Agency(platform, metadata, "Immigration Department", agency_events=True)
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "mail-phone")
    address = f"chan.{uuid.uuid4().hex[:8]}@example.hk"
    prefs = await app.set_preferences(channels=["inbox", "email"], email=address)
    assert prefs["channels"] == ["email", "inbox"] and prefs["email"] == address and "phone" not in prefs
    template = await agency.template()

    # No order from the agency: push, e-mail, SMS — the citizen turned push off, so e-mail carries it.
    notification_id = await _send(agency, template, sub, reference="M-1")
    mail = await _mail_for(platform, notification_id)
    assert mail["To"] == address and mail["X-Envelope-To"] == address
    assert mail["Subject"] == "續期牌照 DL-42"  # the citizen's language (zh-HK at enrolment)
    assert "Chan Tai Man" in mail.get_content() and "Immigration Department" in mail.get_content()
    assert "Harbour ID" in mail["From"] and mail["Content-Language"] == "zh-HK"

    status = await _settled(agency, notification_id, "delivered")
    assert status["channel"] == "email" and {"sending", "sent", "delivered"} <= set(status["timeline"])
    # The inbox holds it as well: the record of what agencies sent.
    assert notification_id in {m["notification_id"] for m in await app.inbox()}

    # The agency's topic hears `delivered` with the channel (the `sent` in between is not announced), never the address.
    async def announced():
        events = [json.loads(m.value) for m in await all_messages(platform.infra.kafka_bootstrap, [agency_topic(agency.client_id)])]
        return [n for e in events if e["type"] == "notification.status_changed" for n in e["data"]["notifications"]
                if n["notification_id"] == notification_id] or None

    [announcement] = await eventually(announced, timeout_s=20, interval_s=0.5)
    assert announcement["status"] == "delivered" and announcement["channel"] == "email" and announcement["reference"] == "M-1"
    assert address not in json.dumps(announcement)

    # The address is personal data: sealed in notify's database, never in its logs.
    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("notify")]
        stored = [await db["preferences"].find_one({"_id": app.profile.account_id}),
                  await db["channel_messages"].find_one({"notification_id": notification_id})]
    assert stored[1]["state"] == "sent" and stored[1]["receipt"].startswith("smtp 250")
    assert all(address not in json.dumps(doc, default=str) and "DL-42" not in json.dumps(doc, default=str) for doc in stored)
    for process in ("notify", "notify-dispatcher"):
        assert address not in (platform.stack.log_dir / f"{process}.log").read_text()


async def test_a_refused_email_fails_and_an_unreachable_server_is_retried_until_it_takes_it(platform, kiosk, metadata, tmp_path):
    agency = Agency(platform, metadata, "Lands Department")
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "refused-phone")
    template = await agency.template()

    # A recipient the server refuses for good (550): failed at once, with the reason (the address left out of it).
    refused = f"gone.{uuid.uuid4().hex[:6]}@refused.invalid"
    await app.set_preferences(channels=["inbox", "email"], email=refused)
    first = await _send(agency, template, sub)
    failed = await _settled(agency, first, "failed")
    assert failed["reason"].startswith("email-refused: smtp 550") and refused not in failed["reason"]
    assert failed["channel"] == "email" and "delivered" not in failed["timeline"]
    assert first not in received_mail(platform)

    # The server stopped: the message waits and is tried again with back-off; once the server is back it is taken.
    address = f"back.{uuid.uuid4().hex[:6]}@example.hk"
    await app.set_preferences(email=address)
    await asyncio.to_thread(platform.stack.down_smtp)
    try:
        second = await _send(agency, template, sub)
        async with mongo(platform.infra.mongo_uri) as client:
            messages = client[platform.database("notify")]["channel_messages"]
            tried = await eventually(lambda: messages.find_one({"notification_id": second, "attempts": {"$gte": 1},
                                                                 "last_error": {"$exists": True}}), timeout_s=20, interval_s=0.1)
        assert "SMTPConnectError" in tried["last_error"] and tried["state"] == "pending"
        assert agency.status(second)["status"] == "sent"
    finally:
        await asyncio.to_thread(platform.stack.up_smtp)
    assert (await _mail_for(platform, second))["To"] == address
    assert (await _settled(agency, second, "delivered"))["channel"] == "email"

    # A server that keeps saying "try later" (451): retried with back-off (1, 2, 4, 8 s), failed after the fifth try.
    await app.set_preferences(email=f"busy.{uuid.uuid4().hex[:6]}@deferred.invalid")
    third = await _send(agency, template, sub)
    given_up = await _settled(agency, third, "failed", timeout_s=60)
    assert given_up["reason"].startswith("email-undeliverable: smtp 451")
    async with mongo(platform.infra.mongo_uri) as client:
        message = await client[platform.database("notify")]["channel_messages"].find_one({"notification_id": third})
    assert message["state"] == "failed" and message["attempts"] == 5


async def test_the_agencys_order_and_the_citizens_channels_choose_push_email_or_sms(platform, kiosk, metadata, tmp_path):
    agency = Agency(platform, metadata, "Social Welfare Department")
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "sms-phone")
    template = await agency.template()
    address, phone = f"lee.{uuid.uuid4().hex[:6]}@example.hk", "+8529" + str(uuid.uuid4().int)[:7]
    await app.set_preferences(channels=["inbox", "push", "email", "sms"], email=address, phone=phone)

    # The first of the agency's order that the citizen turned on.
    by_sms = await _send(agency, template, sub, channels=["sms", "email"])
    sms = await eventually(lambda: received_sms(platform).get(by_sms), timeout_s=30)
    assert sms["to"] == phone and "續期牌照 DL-42" in sms["text"] and sms["from"] == "Social Welfare Department"
    assert (await _settled(agency, by_sms, "delivered"))["channel"] == "sms"
    by_email = await _send(agency, template, sub, channels=["email", "sms"])
    assert (await _mail_for(platform, by_email))["To"] == address
    assert (await _settled(agency, by_email, "delivered"))["channel"] == "email"
    by_push = await _send(agency, template, sub, channels=["push", "sms"])
    assert (await _settled(agency, by_push, "delivered"))["channel"] == "push"
    default = await _send(agency, template, sub)  # no order: push first
    assert (await _settled(agency, default, "delivered"))["channel"] == "push"
    assert by_push not in received_sms(platform) and by_push not in received_mail(platform)

    # The citizen turns SMS and push off: an agency asking for those gets the inbox alone.
    await app.set_preferences(channels=["inbox", "email"])
    inbox_only = await _send(agency, template, sub, channels=["sms", "push"])
    assert (await _settled(agency, inbox_only, "delivered"))["channel"] == "inbox"
    assert inbox_only not in received_sms(platform)
    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("notify")]
        assert await db["push_log"].count_documents({"notification_id": {"$in": [by_push, default]}}) == 2
        assert await db["push_log"].count_documents({"notification_id": {"$in": [by_sms, by_email, inbox_only]}}) == 0

    # A number the SMS gateway refuses: failed, with the reason.
    await app.set_preferences(channels=["inbox", "sms"], phone="+9991234567")
    refused = await _send(agency, template, sub, channels=["sms"])
    assert (await _settled(agency, refused, "failed"))["reason"] == "sms-refused: sms unallocated number"


async def test_unknown_or_repeated_channels_are_refused_with_a_problem(platform, kiosk, metadata, tmp_path):
    agency = Agency(platform, metadata, "Post Office")
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "bad-channel-phone")
    template = await agency.template()
    body = {"template_id": template["template_id"], "sub": sub, "personalisation": VALUES}
    for channels in (["fax"], ["sms", "sms"], [], ["push", "email", "sms", "inbox"], "email"):
        problem = refusal(await agency.send({**body, "channels": channels}), 422, "validation-failed")
        assert any(error["field"].startswith("channels") for error in problem["errors"]), problem
    batch = agency.call("POST", "/v1/notifications/batch", {"template_id": template["template_id"], "channels": ["pigeon"],
                                                            "recipients": [{"sub": sub, "personalisation": VALUES}]})
    refusal(batch, 422, "validation-failed")
    # The citizen's side: e-mail or SMS turned on without an address, or a channel notify does not have.
    for change in ({"channels": ["inbox", "email"]}, {"channels": ["inbox", "sms"]}, {"channels": ["inbox", "fax"]},
                   {"email": "not-an-address"}, {"phone": "12345"}):
        with pytest.raises(Exception) as refused:
            await app.set_preferences(**change)
        assert getattr(refused.value, "status", None) == 422, refused.value
        assert refused.value.problem["type"].endswith("/validation-failed")

"""E-mail and SMS in process on a FrozenClock, against the dev stack's real SMTP server (its own process here):
a batch's e-mail counted when its receipt comes, back-off moved by the clock, a receipt after the citizen read it.

The dispatcher's e-mail/SMS round is receipts.send_due_messages with the adapters the settings would give, pointed
at this test's SMTP server and SMS folder (the end-to-end journeys are tests/e2e/test_notify_channels.py).
"""

from __future__ import annotations

import asyncio
import email.policy
import mailbox
from email import message_from_binary_file

import pytest

from libs.devstack import DevStack, StackConfig
from services.notify.messaging import LocalSmsSink, SmtpEmailAdapter, message_queue
from services.notify.receipts import send_due_messages

from .conftest import VALUES

ADDRESS = "chan.tai.man@example.hk"


@pytest.fixture
def smtp(tmp_path):
    """The dev stack's SMTP server on a free port (stopped by the test when it wants it down; by PID after)."""
    stack = DevStack(StackConfig.free_ports(tmp_path / "stack"))
    stack.up_smtp()
    yield stack
    stack.down_smtp()


def mail_in(stack: DevStack) -> dict[str, email.message.EmailMessage]:
    box = mailbox.Maildir(stack.config.maildir, factory=lambda f: message_from_binary_file(f, policy=email.policy.default))
    return {m["X-Harbour-Notification"]: m for m in box}


def messages_round(notify, stack: DevStack, tmp_path):
    settings = notify.ctx.settings
    queue = message_queue(notify.ctx.db, max_attempts=settings.channel_max_attempts, backoff_s=settings.channel_backoff_s)
    adapters = {"email": SmtpEmailAdapter(host="127.0.0.1", port=stack.config.smtp_port, sender=settings.smtp_from),
                "sms": LocalSmsSink(tmp_path / "sms")}
    return lambda: send_due_messages(notify.ctx, queue, adapters)


async def test_a_batch_email_is_counted_at_its_receipt_and_an_unreachable_server_backs_off_by_the_clock(notify, smtp, tmp_path):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    chosen = await notify.preferences(citizen, {"channels": ["inbox", "email"], "email": ADDRESS})
    assert chosen["channels"] == ["email", "inbox"] and chosen["email"] == ADDRESS
    template = await notify.template(agency)
    send_round = messages_round(notify, smtp, tmp_path)

    batch = await notify.send_batch(agency, {"template_id": template["template_id"], "channels": ["sms", "email"],
                                             "recipients": [{"sub": citizen.sub, "personalisation": VALUES}]})
    assert batch.status == 201, await batch.text()
    job_id = (await batch.json())["job_id"]
    await notify.dispatch()
    # In the inbox and handed to e-mail: `sent`, not counted yet — the job waits for the receipt.
    progress = await notify.progress(agency, job_id)
    assert progress["counts"]["pending"] == 1 and not progress["finished"]
    [item] = [m for m in await notify.inbox(citizen) if m["kind"] == "agency"]
    assert (await notify.status(agency, item["notification_id"]))["status"] == "sent"

    # The server is down: tried once, due again 1 s later (channel_backoff_s), not before.
    await asyncio.to_thread(smtp.down_smtp)
    assert await send_round() == 1
    assert (await notify.status(agency, item["notification_id"]))["status"] == "sent"
    notify.clock.advance(0.9)
    assert await send_round() == 0
    await asyncio.to_thread(smtp.up_smtp)
    notify.clock.advance(0.1)
    assert await send_round() == 1

    mail = mail_in(smtp)[item["notification_id"]]
    assert mail["To"] == ADDRESS and mail["Subject"] == "Renew licence DL-42" and "Chan Tai Man" in mail.get_content()
    status = await notify.status(agency, item["notification_id"])
    assert status["status"] == "delivered" and status["channel"] == "email"
    progress = await notify.progress(agency, job_id)
    assert progress["counts"]["delivered"] == 1 and progress["finished"]
    assert await send_round() == 0  # taken once: nothing left to send


async def test_a_message_read_in_the_inbox_before_its_receipt_stays_read(notify, smtp, tmp_path):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    await notify.preferences(citizen, {"channels": ["inbox", "sms"], "phone": "+85291234567"})
    status = await notify.delivered(agency, citizen, channels=["email", "sms"])
    assert status["status"] == "sent"
    [item] = [m for m in await notify.inbox(citizen) if m["notification_id"] == status["notification_id"]]
    read = await notify.http.post(f"/v1/inbox/{item['id']}/read", headers=notify.device_token(citizen))
    assert read.status == 200

    assert await messages_round(notify, smtp, tmp_path)() == 1
    [sms] = (tmp_path / "sms").glob("*.json")
    assert "+85291234567" in sms.read_text()
    after = await notify.status(agency, status["notification_id"])
    assert after["status"] == "read" and after["channel"] == "sms" and "delivered" not in after["timeline"]

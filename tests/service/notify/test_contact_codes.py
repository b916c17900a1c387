"""A changed phone or e-mail (contact_codes.py): the one-time code sent to the new address, and the verified address kept
only for a channel the citizen has on."""

from __future__ import annotations

import json

from libs.crypto import seal
from libs.events import CloudEvent
from services.notify.messaging import LocalSmsSink, message_queue
from services.notify.receipts import send_due_messages


def notify_key(notify) -> dict:
    return json.loads(notify.secrets["HARBOUR_NOTIFY_SEALING_PUBLIC_JWK"])


def contact_verification(notify, account_id: str, change_id: str, field: str, address: str, code: str) -> CloudEvent:
    return CloudEvent(source="/auth", type="identity.contact_verification", subject=account_id, data={
        "account_id": account_id, "change_id": change_id, "field": field, "channel": {"phone": "sms", "email": "email"}[field],
        "expires_at": notify.clock.now().isoformat(), "sealed_message": seal({"address": address, "code": code}, notify_key(notify))})


def profile_updated(notify, account_id: str, contacts: dict) -> CloudEvent:
    return CloudEvent(source="/auth", type="identity.profile_updated", subject=account_id, data={
        "account_id": account_id, "change_id": "chg-1", "fields": sorted(contacts),
        "verification": {"method": "one_time_code", "time": notify.clock.now().isoformat(), "channel": "sms"},
        "sealed_profile": "(sealed to formfill: not notify's)", "sealed_contacts": seal(contacts, notify_key(notify))})


async def test_the_code_goes_once_to_the_new_number_in_the_citizens_language(notify, tmp_path):
    agency = await notify.agency()
    citizen = await notify.citizen(agency, language="zh-HK")
    event = contact_verification(notify, citizen.account_id, "chg-abc", "phone", "+85261234567", "493817")
    await notify.learn(event)
    await notify.learn(event)  # redelivered: one message all the same

    settings = notify.ctx.settings
    queue = message_queue(notify.ctx.db, max_attempts=settings.channel_max_attempts, backoff_s=settings.channel_backoff_s)
    assert await send_due_messages(notify.ctx, queue, {"sms": LocalSmsSink(tmp_path / "sms")}) == 1
    [sms] = [json.loads(p.read_text()) for p in (tmp_path / "sms").glob("*.json")]
    assert sms["to"] == "+85261234567" and "493817" in sms["text"] and "電話號碼" in sms["text"] and sms["language"] == "zh-HK"
    stored = await notify.ctx.db["channel_messages"].find_one({"_id": "chm-chg-abc"})
    assert stored["state"] == "sent" and stored["account_id"] == citizen.account_id
    assert "493817" not in str(stored) and "+85261234567" not in str(stored)  # sealed at rest
    assert await notify.inbox(citizen) == []  # a code is no inbox message


async def test_a_verified_number_replaces_the_one_held_only_while_sms_is_on(notify):
    agency = await notify.agency()
    with_sms = await notify.citizen(agency)
    without = await notify.citizen(agency)
    await notify.preferences(with_sms, {"channels": ["inbox", "sms"], "phone": "+85290000000"})
    await notify.preferences(without, {"channels": ["inbox", "email"], "email": "a@example.hk"})

    await notify.learn(profile_updated(notify, with_sms.account_id, {"phone": "+85261234567"}))
    await notify.learn(profile_updated(notify, without.account_id, {"phone": "+85261234567"}))

    shown = await notify.http.get("/v1/preferences", headers=notify.device_token(with_sms))
    assert (await shown.json())["phone"] == "+85261234567"
    other = await (await notify.http.get("/v1/preferences", headers=notify.device_token(without))).json()
    assert "phone" not in other and other["email"] == "a@example.hk"  # SMS off: notify keeps no number

"""A changed phone number or e-mail address: its one-time code sent to the new address, and the verified address kept.

auth publishes `identity.contact_verification` when a citizen asks to change
their phone or e-mail from the app: the new address and a one-time code,
sealed to notify's key (`HARBOUR_NOTIFY_SEALING_KEY`). `send_code` opens it
and queues one SMS or e-mail to that address in `channel_messages` (sealed
with notify's keyring like every message, id derived from the change, so a
redelivered event queues nothing twice); the dispatcher's sender hands it to
the adapter like any message (receipts.py: there is no notification, so the
receipt moves only the message's own state). It skips the citizen's channel
preferences and quiet hours: the citizen is waiting for it. Neither the code
nor the address is logged.

`identity.profile_updated` with `sealed_contacts` (a code-verified change)
replaces the address notify holds for that channel — only if the citizen has
that channel on and so holds one (least privilege: addresses are kept only
while their channel is on, preferences.py) — and records when it was verified.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.crypto import unseal

from .collections import ACCOUNTS, CHANNEL_MESSAGES, PREFERENCES
from .context import Notify
from .messaging import OutboundMessage, queued_message
from .preferences import contacts

MESSAGES = {
    "en": {"subject": "Your Harbour ID code", "body": "{code} is your Harbour ID code to confirm your new {what}. It expires in "
           "10 minutes. If you did not ask for it, ignore this message: nothing changes without the code.",
           "phone": "phone number", "email": "e-mail address"},
    "zh-HK": {"subject": "你的 Harbour ID 驗證碼", "body": "{code} 是你用來確認新{what}的 Harbour ID 驗證碼，10 分鐘內有效。"
              "如非本人要求，請忽略此訊息：沒有驗證碼，資料不會更改。", "phone": "電話號碼", "email": "電郵地址"},
    "zh-CN": {"subject": "你的 Harbour ID 验证码", "body": "{code} 是你用来确认新{what}的 Harbour ID 验证码，10 分钟内有效。"
              "如非本人要求，请忽略此信息：没有验证码，资料不会更改。", "phone": "电话号码", "email": "电邮地址"},
}


def message_id(change_id: str) -> str:
    return f"chm-{change_id}"


async def send_code(notify: Notify, session: AsyncClientSession, data: dict[str, Any], at: datetime) -> None:
    opened = unseal(data["sealed_message"], notify.settings.sealing_jwk)
    account = await notify.db[ACCOUNTS].find_one({"_id": data["account_id"]}, {"language": 1}, session=session) or {}
    language = account.get("language") if account.get("language") in MESSAGES else "en"
    text = MESSAGES[language]
    message = OutboundMessage(
        message_id=message_id(data["change_id"]), notification_id=f"code-{data['change_id']}", channel=data["channel"],
        address=opened["address"], subject=text["subject"],
        body=text["body"].format(code=opened["code"], what=text[data["field"]]), language=language, sender_name="Harbour ID")
    queued = queued_message(notify.cipher, message, notify.clock.now()) | {"account_id": data["account_id"], "kind": "code"}
    await notify.db[CHANNEL_MESSAGES].update_one({"_id": message.message_id}, {"$setOnInsert": queued}, upsert=True,
                                                 session=session)


async def take_verified(notify: Notify, session: AsyncClientSession, data: dict[str, Any], at: datetime) -> None:
    if not data.get("sealed_contacts"):
        return  # a self-declared change (the address): notify holds no postal address
    account_id = data["account_id"]
    pref = await notify.db[PREFERENCES].find_one({"_id": account_id}, session=session)
    if pref is None:
        return
    verified = unseal(data["sealed_contacts"], notify.settings.sealing_jwk)
    held = contacts(notify.cipher, account_id, pref)
    replaced = {name: value for name, value in verified.items() if name in held}
    if not replaced:
        return  # that channel is off: notify keeps no address for it
    await notify.db[PREFERENCES].update_one({"_id": account_id}, {"$set": {
        "contacts_sealed": notify.cipher.encrypt_record(held | replaced, record_id=account_id),
        **{f"contacts_verified_at.{name}": at for name in replaced}, "updated_at": notify.clock.now()}}, session=session)

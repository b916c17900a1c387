"""Platform messages: approval prompts and security alerts, in the citizen's language, always high priority.

They are notifications of kind `platform`: no agency, no template version,
no opt-out (a citizen cannot opt out of security), and no quiet hours (an
approval waits for the citizen now). The messages are built in here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from .context import Notify
from .notifications import dispatch_event, new_notification
from .preferences import HONG_KONG
from .collections import CLIENTS, NOTIFICATIONS

MESSAGES: dict[str, dict[str, Any]] = {
    # Only what is not the relying party's free text: its registered name and the kind of action. The purpose,
    # document and field names reach auth alone (sealed to it) and are shown only in the app.
    "approval": {"placeholders": ["client_name", "action", "matching_code"], "content": {
        "en": {"subject": "Approve on your phone: {{ client_name }}",
               "body": "{{ client_name }} asks you to {% if action == 'login' %}log in{% elif action == 'formfill' %}share your details{% elif action == 'sign' %}sign a document{% else %}approve a request{% endif %}.{% if matching_code %} Matching code {{ matching_code }}.{% endif %} Open Harbour ID to see the request and answer."},
        "zh-HK": {"subject": "請在手機上批准：{{ client_name }}",
                  "body": "{{ client_name }} 請你{% if action == 'login' %}登入{% elif action == 'formfill' %}提供你的資料{% elif action == 'sign' %}簽署文件{% else %}批准一項請求{% endif %}。{% if matching_code %}配對碼 {{ matching_code }}。{% endif %}請開啟 Harbour ID 查看並回覆。"},
        "zh-CN": {"subject": "请在手机上批准：{{ client_name }}",
                  "body": "{{ client_name }} 请你{% if action == 'login' %}登录{% elif action == 'formfill' %}提供你的资料{% elif action == 'sign' %}签署文件{% else %}批准一项请求{% endif %}。{% if matching_code %}配对码 {{ matching_code }}。{% endif %}请打开 Harbour ID 查看并回复。"}}},
    "new_device": {"placeholders": ["at"], "content": {
        "en": {"subject": "A new device was activated", "body": "A device was activated for your Harbour ID at {{ at }} (Hong Kong time). If this was not you, revoke it in the app and call us."},
        "zh-HK": {"subject": "已啟用新裝置", "body": "你的 Harbour ID 於 {{ at }}（香港時間）啟用了一部裝置。如非本人操作，請在應用程式中撤銷並致電我們。"},
        "zh-CN": {"subject": "已启用新设备", "body": "你的 Harbour ID 于 {{ at }}（香港时间）启用了一部设备。如非本人操作，请在应用程序中撤销并致电我们。"}}},
    "devices_replaced": {"placeholders": ["at", "count"], "content": {
        "en": {"subject": "Your phone was replaced at a kiosk", "body": "At {{ at }} (Hong Kong time) your Harbour ID was proofed again at a kiosk and a new phone can be activated; {{ count }} earlier device(s) can no longer use it. If this was not you, call us."},
        "zh-HK": {"subject": "已在自助服務站更換手機", "body": "你的 Harbour ID 於 {{ at }}（香港時間）在自助服務站重新核實身分，可啟用新手機；之前的 {{ count }} 部裝置已不能再使用。如非本人操作，請致電我們。"},
        "zh-CN": {"subject": "已在自助服务站更换手机", "body": "你的 Harbour ID 于 {{ at }}（香港时间）在自助服务站重新核实身份，可启用新手机；之前的 {{ count }} 部设备已不能再使用。如非本人操作，请致电我们。"}}},
    # The sandbox's self-service recovery of a test citizen's lost phone (no kiosk: auth's POST /v1/enrolments/recovery).
    "devices_recovered": {"placeholders": ["at", "count"], "content": {
        "en": {"subject": "Your phone was replaced (sandbox)", "body": "At {{ at }} (Hong Kong time) your test identity was recovered in the sandbox without a kiosk and a new phone can be activated; {{ count }} earlier device(s) can no longer use it."},
        "zh-HK": {"subject": "已更換手機（沙盒）", "body": "你的測試身分於 {{ at }}（香港時間）在沙盒中無需自助服務站而恢復，可啟用新手機；之前的 {{ count }} 部裝置已不能再使用。"},
        "zh-CN": {"subject": "已更换手机（沙盒）", "body": "你的测试身份于 {{ at }}（香港时间）在沙盒中无需自助服务站而恢复，可启用新手机；之前的 {{ count }} 部设备已不能再使用。"}}},
    "device_added": {"placeholders": ["at"], "content": {
        "en": {"subject": "A new device was added", "body": "At {{ at }} (Hong Kong time) a new device was added to your Harbour ID, approved on one of your devices. If this was not you, revoke it in the app and call us."},
        "zh-HK": {"subject": "已加入新裝置", "body": "你的 Harbour ID 於 {{ at }}（香港時間）加入了一部新裝置，並已在你的其中一部裝置上批准。如非本人操作，請在應用程式中撤銷並致電我們。"},
        "zh-CN": {"subject": "已加入新设备", "body": "你的 Harbour ID 于 {{ at }}（香港时间）加入了一部新设备，并已在你的其中一部设备上批准。如非本人操作，请在应用程序中撤销并致电我们。"}}},
    "assurance_upgraded": {"placeholders": ["at"], "content": {
        "en": {"subject": "Your identity was verified in person", "body": "At {{ at }} (Hong Kong time) your Harbour ID was verified in person at a kiosk: it is now a plus identity. If this was not you, call us."},
        "zh-HK": {"subject": "已親身核實你的身分", "body": "你的 Harbour ID 於 {{ at }}（香港時間）在自助服務站親身核實，現為進階身分。如非本人操作，請致電我們。"},
        "zh-CN": {"subject": "已亲身核实你的身份", "body": "你的 Harbour ID 于 {{ at }}（香港时间）在自助服务站亲身核实，现为进阶身份。如非本人操作，请致电我们。"}}},
    "new_service": {"placeholders": ["service"], "content": {
        "en": {"subject": "First sign-in to {{ service }}", "body": "You signed in to {{ service }} with Harbour ID for the first time. If this was not you, call us."},
        "zh-HK": {"subject": "首次登入 {{ service }}", "body": "你首次以 Harbour ID 登入 {{ service }}。如非本人操作，請致電我們。"},
        "zh-CN": {"subject": "首次登录 {{ service }}", "body": "你首次以 Harbour ID 登录 {{ service }}。如非本人操作，请致电我们。"}}},
}


def message(kind: str) -> dict[str, Any]:
    """A built-in message shaped like a template document, for templates.render."""
    return MESSAGES[kind]


async def queue(notify: Notify, session: AsyncClientSession, account_id: str, kind: str, values: dict[str, str]) -> str:
    now = notify.clock.now()
    doc = new_notification(notify, client=None, template=None, kind="platform", account_id=account_id, sub=None,
                           personalisation=values, reference=None, priority="high", due_at=now, now=now, platform_message=kind)
    await notify.db[NOTIFICATIONS].insert_one(doc, session=session)
    await notify.publish_many(session, [dispatch_event(notify, [doc["_id"]], "high")])
    return doc["_id"]


async def on_approval_requested(notify: Notify, session: AsyncClientSession, data: dict[str, Any]) -> None:
    """The prompt's clear part only (the rest is sealed to auth): who asks, for what kind of action, the matching code."""
    requester = data.get("requester") or {}
    await queue(notify, session, data["account_id"], "approval", {
        "client_name": str(requester.get("client_name") or requester.get("service") or "A service"),
        "action": str(data.get("action") or ""), "matching_code": str(data.get("matching_code") or "")})


async def on_device_activated(notify: Notify, session: AsyncClientSession, account_id: str, at: datetime) -> None:
    await queue(notify, session, account_id, "new_device", {"at": at.astimezone(HONG_KONG).strftime("%Y-%m-%d %H:%M")})


async def on_devices_replaced(notify: Notify, session: AsyncClientSession, account_id: str, at: datetime, count: int, *,
                             sandbox: bool = False) -> None:
    """A kiosk replaced the citizen's phone (or, `sandbox`, the test citizen recovered it without one): the alert waits
    in the inbox, read from the new phone."""
    await queue(notify, session, account_id, "devices_recovered" if sandbox else "devices_replaced",
                {"at": at.astimezone(HONG_KONG).strftime("%Y-%m-%d %H:%M"), "count": str(count)})


async def on_device_added(notify: Notify, session: AsyncClientSession, account_id: str, at: datetime) -> None:
    """A phone already bound approved adding a new one: every device of the account reads the alert in the inbox."""
    await queue(notify, session, account_id, "device_added", {"at": at.astimezone(HONG_KONG).strftime("%Y-%m-%d %H:%M")})


async def on_assurance_upgraded(notify: Notify, session: AsyncClientSession, account_id: str, at: datetime) -> None:
    await queue(notify, session, account_id, "assurance_upgraded", {"at": at.astimezone(HONG_KONG).strftime("%Y-%m-%d %H:%M")})


async def on_new_service(notify: Notify, session: AsyncClientSession, account_id: str, sector: str) -> None:
    """A pairwise subject is assigned the first time a citizen signs in to a sector's services."""
    client = await notify.db[CLIENTS].find_one({"sector": sector}, {"name": 1}, session=session)
    await queue(notify, session, account_id, "new_service", {"service": client["name"] if client else sector})

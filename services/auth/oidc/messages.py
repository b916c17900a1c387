"""The fixed texts of the login pages, in every language we serve.

A plain dict per language rather than gettext: there are two languages and a
few dozen strings, and a dict keeps each translation next to its original so
a reviewer sees both at once. Every language must have exactly the same keys
(a unit test checks it), and the templates read them through StrictUndefined,
so a missing translation fails loudly instead of rendering an empty button.

Texts that the browser script shows later (status changes, the countdown)
live here too; they reach the script as JSON, never spliced into code.
``{time}`` in ``expires_in`` is replaced by the script with "m:ss".
"""

from __future__ import annotations

from typing import Final

__all__ = ["MESSAGES"]

MESSAGES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "brand": "Harbour ID",
        "switch_to": "繁體中文",
        "login_title": "Log in with Harbour ID",
        "asks_to": "asks you to log in and to share:",
        "asks_to_login": "asks you to log in.",
        "scope_offline_access": "Keep you signed in until you log out",
        "scope_formfill": "Ask to fill in forms with your personal data (you approve each time)",
        "scope_sign": "Ask you to sign documents (you approve each time)",
        "scope_notify": "Send you notifications",
        "sent_to_phone": "We have sent this request to your Harbour ID app: open the app on your phone and approve it there.",
        "on_this_phone": "On your phone now?",
        "open_app": "Open the Harbour ID app",
        "scan_heading": "Scan with your phone",
        "step_scan": "Open the Harbour ID app on your phone and scan this QR code.",
        "step_match": "Check that the app shows the same code:",
        "step_approve": "Approve the request in the app.",
        "qr_title": "QR code to log in with the Harbour ID app",
        "matching_code_label": "Matching code",
        "waiting": "Waiting for your approval…",
        "approved": "Approved. Taking you back…",
        "denied": "You declined this request. You can close this page.",
        "expired": "This request has expired. Go back to the service and try again.",
        "reconnecting": "Connection problem. Trying again…",
        "expires_in": "This request expires in {time}.",
        "expired_local": "This request has expired.",
        "noscript": "This page needs JavaScript to show the QR code and to continue after you approve in the app.",
        "error_hint": "Go back to the service you came from and try again. "
        "If the problem continues, contact that service.",
        "logged_out_title": "You have logged out",
        "logged_out_detail": "You have logged out of Harbour ID. You can close this page.",
        "open_app_scheme": "The button does not open the app? Try this link.",
    },
    "zh-HK": {
        "brand": "Harbour ID",
        "switch_to": "English",
        "login_title": "以 Harbour ID 登入",
        "asks_to": "要求你登入並提供以下資料：",
        "asks_to_login": "要求你登入。",
        "scope_offline_access": "保持登入狀態，直至你登出",
        "scope_formfill": "要求以你的個人資料填寫表格（每次由你確認）",
        "scope_sign": "要求你簽署文件（每次由你確認）",
        "scope_notify": "向你發送通知",
        "sent_to_phone": "我們已把此要求傳送到你的 Harbour ID 應用程式：請在手機開啟應用程式確認。",
        "on_this_phone": "正在使用手機？",
        "open_app": "開啟 Harbour ID 應用程式",
        "scan_heading": "用手機掃描",
        "step_scan": "在手機開啟 Harbour ID 應用程式，掃描此二維碼。",
        "step_match": "確認應用程式顯示相同的代碼：",
        "step_approve": "在應用程式確認此要求。",
        "qr_title": "以 Harbour ID 應用程式登入的二維碼",
        "matching_code_label": "配對代碼",
        "waiting": "等待你的確認…",
        "approved": "已確認，正在返回…",
        "denied": "你已拒絕此要求，可以關閉此頁。",
        "expired": "此要求已逾時。請返回原本的服務再試一次。",
        "reconnecting": "連線出現問題，正在重試…",
        "expires_in": "此要求將於 {time} 後失效。",
        "expired_local": "此要求已逾時。",
        "noscript": "此頁需要 JavaScript，才能顯示二維碼，並在你於應用程式確認後繼續。",
        "error_hint": "請返回原本的服務再試一次。如問題持續，請聯絡該服務。",
        "logged_out_title": "你已登出",
        "logged_out_detail": "你已登出 Harbour ID，可以關閉此頁。",
        "open_app_scheme": "按鈕未能開啟應用程式？請試用此連結。",
    },
}

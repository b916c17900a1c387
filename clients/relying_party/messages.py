"""The site's words in English and Traditional Chinese (Hong Kong)."""

from __future__ import annotations

LANGUAGES = ("en", "zh-HK")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "brand": "Harbour Power & Light",
        "tagline": "Demo online service",
        "other_language": "繁體中文",
        "home_title": "Open an electricity account",
        "home_intro": "Move in without the paperwork: log in with Harbour ID, let it fill in your details, and sign the application on your phone.",
        "login_button": "Log in with Harbour ID",
        "logout_button": "Log out",
        "apply_title": "Your application",
        "prefill_hint": "Harbour ID can fill in your name, address and contact details. You choose what to share on your phone.",
        "prefill_button": "Fill in with Harbour ID",
        "prefilled_note": "Filled in with Harbour ID. Check the details before you continue.",
        "field_name": "Full name",
        "field_address": "Supply address",
        "field_phone": "Phone",
        "field_email": "E-mail (optional)",
        "field_plan": "Tariff",
        "plan_standard": "Standard",
        "plan_green": "Green energy",
        "continue_button": "Continue",
        "review_title": "Check and sign",
        "review_intro": "Sign the application with Harbour ID. Your phone shows the document name before you approve.",
        "reference": "Reference",
        "preview_pdf": "View the application (PDF)",
        "sign_button": "Sign with Harbour ID",
        "waiting_title": "Approve on your phone",
        "waiting_prefill": "Open the Harbour ID app on your phone and approve sharing your details with Harbour Power & Light.",
        "waiting_sign": "Open the Harbour ID app on your phone and approve signing: {document}.",
        "waiting_status": "Waiting for your approval…",
        "check_again": "Check again",
        "done_title": "Application signed",
        "done_intro": "Thank you. Your application {reference} is signed and submitted.",
        "download_signed": "Download the signed application (PDF)",
        "confirmation_sent": "A confirmation has been sent to your Harbour ID inbox.",
        "confirmation_failed": "We could not send a confirmation to your Harbour ID inbox; your application is still submitted.",
        "denied": "You declined on your phone. Nothing was shared.",
        "expired": "The request expired. Please try again.",
        "error_title": "Something went wrong",
        "back_home": "Back to the start",
        "invalid_field": "Please check this field.",
        "signed_in_as": "Logged in with Harbour ID",
    },
    "zh-HK": {
        "brand": "海港電力",
        "tagline": "示範網上服務",
        "other_language": "English",
        "home_title": "開立電力戶口",
        "home_intro": "遷入新居毋須填表：以「海港身份」登入，由它代為填寫資料，再在手機上簽署申請。",
        "login_button": "以「海港身份」登入",
        "logout_button": "登出",
        "apply_title": "你的申請",
        "prefill_hint": "「海港身份」可代為填寫你的姓名、地址及聯絡資料。你可在手機上選擇分享哪些資料。",
        "prefill_button": "以「海港身份」填表",
        "prefilled_note": "已由「海港身份」填寫。請核對資料後繼續。",
        "field_name": "全名",
        "field_address": "供電地址",
        "field_phone": "電話",
        "field_email": "電郵（選填）",
        "field_plan": "收費計劃",
        "plan_standard": "標準",
        "plan_green": "綠色能源",
        "continue_button": "繼續",
        "review_title": "核對及簽署",
        "review_intro": "以「海港身份」簽署申請。批准前，你的手機會顯示文件名稱。",
        "reference": "參考編號",
        "preview_pdf": "查看申請書（PDF）",
        "sign_button": "以「海港身份」簽署",
        "waiting_title": "請在手機上批准",
        "waiting_prefill": "請打開手機上的「海港身份」應用程式，批准與海港電力分享你的資料。",
        "waiting_sign": "請打開手機上的「海港身份」應用程式，批准簽署：{document}。",
        "waiting_status": "正在等待你的批准…",
        "check_again": "再次檢查",
        "done_title": "申請已簽署",
        "done_intro": "謝謝。你的申請 {reference} 已簽署並遞交。",
        "download_signed": "下載已簽署的申請書（PDF）",
        "confirmation_sent": "確認通知已發送至你的「海港身份」收件匣。",
        "confirmation_failed": "未能發送確認通知至你的「海港身份」收件匣；你的申請仍已遞交。",
        "denied": "你已在手機上拒絕，沒有分享任何資料。",
        "expired": "請求已逾時，請再試一次。",
        "error_title": "出現問題",
        "back_home": "返回首頁",
        "invalid_field": "請檢查此欄。",
        "signed_in_as": "已以「海港身份」登入",
    },
}


def pick_language(requested: str | None, accept_language: str | None) -> str:
    if requested in LANGUAGES:
        return requested
    for part in (accept_language or "").split(",")[:16]:
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-HK"
        if tag.startswith("en"):
            return "en"
    return "en"

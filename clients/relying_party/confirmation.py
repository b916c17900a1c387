"""The confirmation the site sends to the citizen's Harbour ID inbox once the application is signed."""

from __future__ import annotations

TEMPLATE_NAME = "Application received"
PLACEHOLDERS = ["reference", "address"]
CONTENT = {
    "en": {"subject": "Application {{ reference }} received",
           "body": "Thank you. We have your signed application {{ reference }} for an electricity account at {{ address }}. "
                   "We will confirm the start of supply within two working days."},
    "zh-HK": {"subject": "已收到申請 {{ reference }}",
              "body": "謝謝。我們已收到你就 {{ address }} 開立電力戶口的已簽署申請 {{ reference }}，並會在兩個工作天內確認供電日期。"},
    "zh-CN": {"subject": "已收到申请 {{ reference }}",
              "body": "谢谢。我们已收到你就 {{ address }} 开立电力户口的已签署申请 {{ reference }}，并会在两个工作天内确认供电日期。"},
}

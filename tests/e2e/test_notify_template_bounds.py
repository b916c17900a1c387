"""Template rendering is bounded through the real stack: refused at creation (422), failed at delivery, never huge."""

from __future__ import annotations

import pytest

from ..support.notify import Agency, citizen_of
from ..support.polling import eventually

pytestmark = pytest.mark.e2e

# The attack run's template: two loops over one value; a 300-character value rendered 90,000 characters.
NESTED = "{% for a in name %}{% for b in name %}{{ b }}{% endfor %}{% endfor %}"
# The same, hidden from the trial renders at creation: only a 300-character value takes the branch.
HIDDEN = "Dear customer. {% if name|length == 300 %}" + NESTED + "{% endif %}"


def template(body: str) -> dict:
    return {"name": "Bounded", "placeholders": ["name"], "content": {"en": {"subject": "Notice", "body": body}}}


async def test_a_nested_loop_template_is_refused_at_creation_and_fails_at_delivery_without_a_huge_message(platform, kiosk, metadata, tmp_path):
    agency = Agency(platform, metadata, "Rating and Valuation Department")
    refused = agency.call("POST", "/v1/templates", template(NESTED))
    assert refused.status_code == 422, refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/template-too-costly") and "loop iterations" in refused.json()["detail"]

    hidden = agency.call("POST", "/v1/templates", template(HIDDEN))
    assert hidden.status_code == 201, hidden.text
    app, sub = await citizen_of(platform, kiosk, metadata, tmp_path, agency, "bounds-phone")
    sends = {}
    for label, value in (("huge", "x" * 300), ("plain", "Chan")):
        sent = await agency.send({"template_id": hidden.json()["template_id"], "sub": sub, "personalisation": {"name": value}})
        assert sent.status_code == 201, sent.text
        sends[label] = sent.json()["notification_id"]

    failed = await eventually(lambda: (s := agency.status(sends["huge"]))["status"] == "failed" and s, timeout_s=30)
    assert failed["reason"] == "render-limit-exceeded"
    await eventually(lambda: agency.status(sends["plain"])["status"] == "delivered", timeout_s=30)
    messages = [m for m in await app.inbox() if m["client_id"] == agency.client_id]
    assert [m["body"] for m in messages] == ["Dear customer. "]  # only the plain one; nothing of 90,000 characters

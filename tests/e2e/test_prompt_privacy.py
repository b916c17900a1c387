"""A relying party's free text in approval prompts (purpose, document name) is personal data (issue 14, item 15).

It must be readable only on the citizen's phone: sealed to auth on
`approvals.requested` and in every outbox, encrypted in auth's `approvals`
queue — while the phone still shows it and approving still works.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest

from libs.events.outbox import OUTBOX_COLLECTION
from libs.events.topics import APPROVAL_REQUESTED

from ..support import formfill, signing
from ..support.broker import all_messages, raw_bytes
from ..support.citizens import enrolled_app
from ..support.database import platform_documents, raw_documents, service_documents
from ..support.oidc import logged_in_token
from ..support.polling import eventually

pytestmark = pytest.mark.e2e


async def test_prompt_free_text_is_sealed_and_encrypted_yet_shown_on_the_phone_and_approvable(platform, kiosk, metadata, tmp_path):
    marker = uuid.uuid4().hex[:12]
    purpose = f"Berth licence renewal for vessel Jade Heron {marker}"
    document_name = f"wong-family-trust-deed-{marker}.txt"
    needles = [purpose.encode(), document_name.encode(), marker.encode()]
    app = await enrolled_app(platform, kiosk, tmp_path, "privacy-phone")

    # A form-fill request with a distinctive purpose, and a signing request with a distinctive document name.
    formfill_rp, _ = formfill.rp_with_key(platform)
    ff_token = await logged_in_token(metadata, formfill_rp, app, "openid formfill")
    ff_request = await formfill.created(platform, ff_token, [("name_en", True)], purpose=purpose)
    sign_rp = signing.signing_rp(platform, "Harbour Lands Registry")
    sg_token = await logged_in_token(metadata, sign_rp, app, "openid sign")
    document = f"Trust deed {marker}\n".encode()
    sg_request = await signing.create(platform, sg_token, json={"document_name": document_name, "sha256": hashlib.sha256(document).hexdigest()})
    ff_id, sg_id = f"formfill-{ff_request['request_id']}", f"sign-{sg_request['request_id']}"

    # The phone (GET /v1/approvals through the gateway) shows both texts.
    async def both_pending():
        pending = {p["approval_id"]: p for p in await app.pending()}
        return pending if {ff_id, sg_id} <= set(pending) else None

    pending = await eventually(both_pending, timeout_s=30)
    assert pending[ff_id]["purpose"] == purpose and pending[ff_id]["request"]["purpose"] == purpose
    assert pending[sg_id]["details"]["document_name"] == document_name
    assert (await app.show(sg_id))["request"]["details"]["document_name"] == document_name

    # Nowhere else in the clear: auth's whole database (its approvals queue among it), every service's outbox...
    stored = await raw_documents(platform, {"auth": ["approvals"]})
    assert len(stored["auth.approvals"]) >= 2
    auth_everything = await service_documents(platform, "auth")
    outboxes = await raw_documents(platform, {s: [OUTBOX_COLLECTION] for s in ("auth", "formfill", "notify", "signing")})
    assert outboxes["formfill.outbox"] and outboxes["signing.outbox"]
    for where, raws in {**stored, "auth (every collection)": auth_everything, **outboxes}.items():
        for raw in raws:
            assert not any(n in raw for n in needles), f"a prompt's free text in the clear in {where}"

    # ...and the approvals.requested topic (its dead-letter twin too), where both prompts did pass.
    async def published():
        messages = await all_messages(platform.infra.kafka_bootstrap, [APPROVAL_REQUESTED.name])
        keys = {m.key for m in messages}
        return messages if {ff_id.encode(), sg_id.encode()} <= keys else None

    messages = await eventually(published, timeout_s=20)
    messages += await all_messages(platform.infra.kafka_bootstrap, [APPROVAL_REQUESTED.name + ".dlq"])
    for message in messages:
        assert not any(n in raw_bytes(message) for n in needles), "a prompt's free text in the clear on approvals.requested"

    # notify's "approve on your phone" names the relying party and the action, never the free text.
    async def pushed():
        items = [m for m in await app.inbox() if m["kind"] == "platform" and "Harbour Lands Registry" in m["subject"] + m["body"]]
        return items or None

    for item in await eventually(pushed, timeout_s=20):
        assert not any(n.decode() in item["subject"] + item["body"] for n in needles)

    # Approving still works end to end: the digest the phone signs is the one each service computed.
    await app.approve(ff_id, selection=[])
    await app.approve(sg_id)
    assert (await formfill.wait_for_status(platform, ff_token, ff_request["request_id"], "approved"))["released_fields"] == ["name_en"]
    await signing.wait_for(platform, sg_token, sg_request["request_id"], "signed")
    # Afterwards too: every collection of every service's database, every topic, every service's log.
    everything = await platform_documents(platform)
    assert len(everything) >= 4
    for name, raws in everything.items():
        for raw in raws:
            assert not any(n in raw for n in needles), f"a prompt's free text in the clear in database {name}"
    for message in await all_messages(platform.infra.kafka_bootstrap):
        assert not any(n in raw_bytes(message) for n in needles), f"a prompt's free text in the clear on {message.topic}"
    for log in platform.stack.log_dir.glob("*.log"):
        assert not any(n in log.read_bytes() for n in needles), f"a prompt's free text in {log.name}"

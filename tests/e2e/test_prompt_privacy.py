"""A relying party's free text in approval prompts (purpose, document name) is personal data (issue 14, item 15).

It must be readable only on the citizen's phone: sealed to auth on
`approvals.requested` and in every outbox, encrypted in auth's `approvals`
queue — while the phone still shows it and approving still works.
"""

from __future__ import annotations

import hashlib
import uuid

import bson
import pytest

from libs.events.outbox import OUTBOX_COLLECTION
from libs.events.topics import APPROVAL_REQUESTED
from libs.store import create_client

from ..integration.eventing import eventually
from .citizens import all_documents, all_messages
from .test_formfill import created, rp_with_key, wait_for_status
from .test_formfill import logged_in_token as formfill_token
from .test_signing import create as create_signing
from .test_signing import logged_in_token as signing_token
from .test_signing import plus_citizen, signing_rp, wait_for

pytestmark = pytest.mark.e2e


async def _raw_documents(platform, collections: dict[str, list[str]]) -> dict[str, list[bytes]]:
    """{"<service>.<collection>": every document of it as raw BSON}."""
    client = create_client(platform.infra.mongo_uri)
    try:
        return {f"{service}.{name}": [bson.encode(doc) async for doc in client[platform.database(service)][name].find()]
                for service, names in collections.items() for name in names}
    finally:
        await client.close()


async def test_prompt_free_text_is_sealed_and_encrypted_yet_shown_on_the_phone_and_approvable(platform, kiosk, metadata, tmp_path):
    marker = uuid.uuid4().hex[:12]
    purpose = f"Berth licence renewal for vessel Jade Heron {marker}"
    document_name = f"wong-family-trust-deed-{marker}.txt"
    needles = [purpose.encode(), document_name.encode(), marker.encode()]
    app = await plus_citizen(platform, kiosk, tmp_path, "privacy-phone")

    # A form-fill request with a distinctive purpose, and a signing request with a distinctive document name.
    formfill_rp, _ = rp_with_key(platform)
    ff_token = await formfill_token(platform, metadata, formfill_rp, app)
    ff_request = await created(platform, ff_token, [("name_en", True)], purpose=purpose)
    sign_rp = signing_rp(platform, "Harbour Lands Registry")
    sg_token = await signing_token(metadata, sign_rp, app)
    document = f"Trust deed {marker}\n".encode()
    sg_request = await create_signing(platform, sg_token, json={"document_name": document_name, "sha256": hashlib.sha256(document).hexdigest()})
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
    stored = await _raw_documents(platform, {"auth": ["approvals"]})
    assert len(stored["auth.approvals"]) >= 2
    client = create_client(platform.infra.mongo_uri)
    try:
        auth_everything = await all_documents(client, platform.database("auth"))
    finally:
        await client.close()
    outboxes = await _raw_documents(platform, {s: [OUTBOX_COLLECTION] for s in ("auth", "formfill", "notify", "signing")})
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
        raw = (message.value or b"") + (message.key or b"") + b"".join(v for _, v in message.headers or ())
        assert not any(n in raw for n in needles), "a prompt's free text in the clear on approvals.requested"

    # notify's "approve on your phone" names the relying party and the action, never the free text.
    async def pushed():
        items = [m for m in await app.inbox() if m["kind"] == "platform" and "Harbour Lands Registry" in m["subject"] + m["body"]]
        return items or None

    for item in await eventually(pushed, timeout_s=20):
        assert not any(n.decode() in item["subject"] + item["body"] for n in needles)

    # Approving still works end to end: the digest the phone signs is the one each service computed.
    await app.approve(ff_id, selection=[])
    await app.approve(sg_id)
    assert (await wait_for_status(platform, ff_token, ff_request["request_id"], "approved"))["released_fields"] == ["name_en"]
    await wait_for(platform, sg_token, sg_request["request_id"], "signed")
    # Afterwards too: every collection of every service's database, every topic, every service's log.
    client = create_client(platform.infra.mongo_uri)
    try:
        names = [n for n in await client.list_database_names() if n.startswith(platform.stack.config.db_prefix)]
        everything = {name: await all_documents(client, name) for name in names}
    finally:
        await client.close()
    assert len(everything) >= 4
    for name, raws in everything.items():
        for raw in raws:
            assert not any(n in raw for n in needles), f"a prompt's free text in the clear in database {name}"
    for message in await all_messages(platform.infra.kafka_bootstrap):
        raw = (message.value or b"") + (message.key or b"") + b"".join(v for _, v in message.headers or ())
        assert not any(n in raw for n in needles), f"a prompt's free text in the clear on {message.topic}"
    for log in platform.stack.log_dir.glob("*.log"):
        assert not any(n in log.read_bytes() for n in needles), f"a prompt's free text in {log.name}"

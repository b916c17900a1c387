"""Approval prompts: fixed ones for pure-logic tests, and prompts put on the broker as formfill or signing would."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from libs.approvals import ApprovalRequest, Requester, seal_prompt
from libs.events import CloudEvent
from libs.events.topics import APPROVAL_REQUESTED


def fixed_request(**overrides) -> ApprovalRequest:
    """The same approval request every time (no randomness, no clock), for pure-logic tests; `overrides` change fields."""
    values = dict(
        approval_id="appr-0123456789",
        account_id="acct-1",
        action="formfill",
        requester=Requester(service="formfill", client_id="rp-1", client_name="Demo Bank"),
        purpose="Open an account",
        details={"fields": ["name_en", "phone"], "optional": ["phone"]},
        expires_at=datetime(2030, 1, 1, 8, 0, 0, 123456, tzinfo=UTC),
    )
    values.update(overrides)
    return ApprovalRequest(**values)


def approval_request(account_id: str, *, expires_in_s: int = 300, purpose: str = "Log in to the Example Portal") -> ApprovalRequest:
    return ApprovalRequest(
        approval_id=f"appr-{uuid.uuid4().hex}",
        account_id=account_id,
        action="test",
        requester=Requester(service="e2e", client_id="rp-example", client_name="Example Portal"),
        purpose=purpose,
        details={"fields": ["name_en", "email"]},
        matching_code="4821",
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in_s),
    )


async def publish_prompt(platform, request: ApprovalRequest) -> None:
    """What formfill or signing does: publish approval.requested, its free text sealed to auth (here straight to the topic)."""
    auth_key = json.loads(platform.env()["HARBOUR_AUTH_SEALING_PUBLIC_JWK"])
    event = CloudEvent(source="/e2e", type="approval.requested", subject=request.approval_id, data=seal_prompt(request, auth_key))
    producer = AIOKafkaProducer(bootstrap_servers=platform.infra.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(APPROVAL_REQUESTED.name, event.to_json(), key=request.approval_id.encode())
    finally:
        await producer.stop()

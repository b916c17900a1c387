"""The approval queue seen from the phone: a prompt shown, decided once, and one left to expire."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta

import pytest

from clients.citizen_app import AppError
from libs.approvals import ApprovalRequest, Requester, sign_decision
from libs.events.outbox import OUTBOX_COLLECTION
from services.auth import housekeeping
from services.auth.approvals import queue


# As signing words a prompt: the whole hash the decision binds, and its start for the citizen to compare.
DOCUMENT_SHA256 = hashlib.sha256(b"the tenancy agreement").hexdigest()


SIGNING = Requester(service="signing", client_id="agency-1", client_name="Housing Authority")


async def queued(auth_service, phone, *, lifetime_s: int = 120, requester: Requester = SIGNING) -> str:
    """A signing prompt in the citizen's queue, as if `approval.requested` had brought it."""
    context = auth_service.context
    request = ApprovalRequest(
        approval_id=f"sig-{uuid.uuid4().hex}", account_id=phone.profile.account_id, action="sign",
        requester=requester,
        purpose="Sign the tenancy agreement", details={"document_name": "tenancy.pdf", "sha256": DOCUMENT_SHA256,
                                                       "sha256_start": DOCUMENT_SHA256[:16]},
        expires_at=context.clock.now() + timedelta(seconds=lifetime_s),
    )
    await queue.enqueue(context, None, request)
    return request.approval_id


async def published(auth_service, event_type: str, subject: str) -> list[dict]:
    docs = await auth_service.context.db[OUTBOX_COLLECTION].find({"type": event_type, "key": subject}).to_list()
    return [json.loads(doc["value"]) for doc in docs]


async def test_a_prompt_is_decided_once_and_the_decision_published(auth_service, clock, tmp_path):
    phone = await auth_service.citizen(tmp_path)
    approval_id = await queued(auth_service, phone)
    assert [p["approval_id"] for p in await phone.pending()] == [approval_id]

    decided = await phone.approve(approval_id)
    assert decided["status"] == "approved"
    assert await phone.pending() == []
    [event] = await published(auth_service, "approval.decided", approval_id)
    assert event["source"] == "/auth" and event["data"]["decision"] == "approve"
    assert event["data"]["device_id"] == phone.profile.device_id
    # When the citizen decided is auth's own time of receiving it (its clock), not the phone's (the JWS's iat, now):
    # formfill and signing judge the decision at it, however late the event reaches them.
    assert event["data"]["decided_at"] == decided["decided_at"] == clock.now().isoformat()
    assert datetime.fromisoformat(event["time"]) >= clock.now()

    with pytest.raises(AppError) as again:
        await phone.deny(approval_id)
    assert again.value.status == 409 and again.value.problem["type"].endswith("/already-decided")
    assert again.value.problem["detail"] == "this approval was already approved"


async def test_another_citizen_sees_no_such_approval(auth_service, tmp_path):
    phone = await auth_service.citizen(tmp_path)
    approval_id = await queued(auth_service, phone)
    other = await auth_service.citizen(tmp_path, "other")
    for attempt in (other.show, other.approve):
        with pytest.raises(AppError) as unseen:
            await attempt(approval_id)
        assert unseen.value.status == 404 and unseen.value.problem["type"].endswith("/not-found")
        assert unseen.value.problem["detail"] == "no such approval for this account"


async def test_an_unanswered_prompt_expires(auth_service, clock, tmp_path):
    phone = await auth_service.citizen(tmp_path)
    approval_id = await queued(auth_service, phone, lifetime_s=60)
    clock.advance(61)
    assert await phone.pending() == []
    assert (await phone.show(approval_id))["status"] == "expired"
    with pytest.raises(AppError) as late:
        await phone.approve(approval_id)
    assert late.value.status == 410 and late.value.problem["type"].endswith("/expired")

    # The service's own housekeeping may get there first: either way the prompt expires once.
    await housekeeping.expire_prompts(auth_service.context)
    [event] = await published(auth_service, "approval.expired", approval_id)
    assert event["data"]["action"] == "sign" and event["data"]["requester"]["service"] == "signing"
    assert await housekeeping.expire_prompts(auth_service.context) == 0


async def test_auth_s_own_prompt_expires_without_telling_other_services(auth_service, clock, tmp_path):
    """A prompt auth asked for itself (a login, a closure, a new device) concerns no other service: expired, it
    publishes no `approval.expired` (decided, no `approval.decided`: test_oidc_authorization.py)."""
    phone = await auth_service.citizen(tmp_path)
    approval_id = await queued(auth_service, phone, lifetime_s=60,
                               requester=Requester(service="auth", client_id="harbour-id", client_name="Harbour ID"))
    clock.advance(61)
    assert await housekeeping.expire_prompts(auth_service.context) == 1
    assert (await phone.show(approval_id))["status"] == "expired"
    assert await published(auth_service, "approval.expired", approval_id) == []


async def test_a_decision_must_be_this_devices_signature_over_this_prompt(auth_service, tmp_path):
    phone = await auth_service.citizen(tmp_path)
    stranger = await auth_service.citizen(tmp_path, "stranger")
    approval_id = await queued(auth_service, phone)
    digest = (await phone.show(approval_id))["digest"]
    token = await phone.device_token()
    url = f"/v1/approvals/{approval_id}/decision"

    async def refused(decision: str) -> tuple[int, str]:
        response = await auth_service.client.post(url, json={"decision": decision},
                                                  headers=phone.device_headers("POST", url, token))
        return response.status, (await response.json())["type"].rsplit("/", 1)[1]

    # Signed by another device's key (claiming to be ours): refused, nothing decided.
    forged = sign_decision(stranger.profile.device_key(), device_id=phone.profile.device_id,
                           approval_id=approval_id, digest=digest, decision="approve")
    assert await refused(forged) == (403, "bad-signature")
    # Over another digest: refused too.
    other_digest = sign_decision(phone.profile.device_key(), device_id=phone.profile.device_id,
                                 approval_id=approval_id, digest="A" * 43, decision="approve")
    assert await refused(other_digest) == (403, "digest-mismatch")
    # Signed by another device id than the token's.
    other_device = sign_decision(stranger.profile.device_key(), device_id=stranger.profile.device_id,
                                 approval_id=approval_id, digest=digest, decision="approve")
    assert await refused(other_device) == (403, "wrong-device")
    assert (await phone.show(approval_id))["status"] == "pending"

    # The real decision is accepted once; replaying it is a conflict.
    genuine = sign_decision(phone.profile.device_key(), device_id=phone.profile.device_id,
                            approval_id=approval_id, digest=digest, decision="deny")
    accepted = await auth_service.client.post(url, json={"decision": genuine}, headers=phone.device_headers("POST", url, token))
    assert accepted.status == 200 and (await accepted.json())["status"] == "denied"
    assert await refused(genuine) == (409, "already-decided")
    assert (await phone.show(approval_id))["status"] == "denied"

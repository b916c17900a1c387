"""A relying party asks a logged-in citizen for fields: the prompt goes to auth at once, sealed."""

from __future__ import annotations

from libs.approvals import ApprovalRequest
from tests.support.auth_stand_in import RelyingParty, outbox_topics, published

from .conftest import problem


async def test_the_prompt_names_the_fields_and_is_sealed_to_auth(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)

    answer = await formfill.ask(rp, sub=citizen.sub, fields=[("name_en", True), ("email", False)], standing=True)

    assert answer.status == 201, await answer.text()
    created = await answer.json()
    assert created["status"] == "pending" and "app_link" not in created
    assert created["expires_at"] == "2030-01-01T08:05:00+00:00"  # the clock's now + 300 s
    prompt = await formfill.prompt(created["request_id"])
    assert isinstance(prompt, ApprovalRequest)
    assert (prompt.account_id, prompt.action, prompt.purpose) == (citizen.account_id, "formfill", "Open a water account")
    assert prompt.details == {"required": ["name_en"], "optional": ["email"], "standing": True}
    assert prompt.requester.client_id == rp.client_id
    # The purpose travels only sealed: the event's clear part does not carry it.
    [event] = await published(formfill.ctx, "approval.requested", prompt.approval_id)
    assert "Open a water account" not in event.model_dump_json() and "opened_in_app" not in event.data
    assert await outbox_topics(formfill.ctx, "approval.requested") == ["approvals.requested"]


async def test_the_purpose_is_stored_only_encrypted(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    created = await (await formfill.ask(rp, sub=citizen.sub, purpose="Connect water at 1 Harbour Road")).json()

    stored = await formfill.ctx.db["requests"].find_one({"_id": created["request_id"]})
    assert "purpose" not in stored and "Harbour Road" not in str(stored)
    status = await (await formfill.status(rp, created["request_id"])).json()
    assert status["purpose"] == "Connect water at 1 Harbour Road"


async def test_a_client_formfill_has_not_heard_of_is_asked_to_retry(formfill):
    stranger = RelyingParty("rp-unknown", "sector-x")
    answer = await formfill.ask(stranger)
    assert answer.status == 409 and answer.headers["Retry-After"] == "1"
    body = await problem(answer)
    assert body["type"].endswith("/unknown-client") and body["detail"] == "this client is not known to formfill yet; retry shortly"


async def test_a_citizen_formfill_has_not_heard_of_is_asked_to_retry(formfill):
    rp = await formfill.relying_party()
    answer = await formfill.ask(rp, sub="sub-not-assigned-yet")
    assert answer.status == 409 and answer.headers["Retry-After"] == "1"
    assert (await problem(answer))["type"].endswith("/citizen-unknown")


async def test_fields_the_client_is_not_registered_for_are_refused(formfill):
    rp = await formfill.relying_party(fields=["name_en"])
    citizen = await formfill.citizen(rp)
    answer = await formfill.ask(rp, sub=citizen.sub, fields=[("name_en", True), ("phone", True), ("email", False)])
    assert answer.status == 403
    body = await problem(answer)
    assert body["type"].endswith("/field-not-registered") and body["title"] == "Field not registered"
    assert body["fields"] == ["email", "phone"]
    assert await formfill.ctx.db["requests"].count_documents({}) == 0


async def test_a_body_formfill_cannot_use_is_refused_before_anything_is_stored(formfill):
    rp = await formfill.relying_party()
    answer = await formfill.http.post("/v1/formfill/requests", json={"fields": [{"name": "shoe_size"}], "purpose": "Shoes"},
                                      headers=formfill.rp_token(rp))
    assert answer.status == 422
    assert (await problem(answer))["type"].endswith("/validation-failed")

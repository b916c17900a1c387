"""A relying party asks a logged-in citizen to sign: only an active `plus` identity is asked."""

from __future__ import annotations

import bson

from tests.support.auth_stand_in import RelyingParty, published

from .conftest import CONTRACT_SHA256, problem


async def test_the_prompt_shows_the_document_and_is_sealed_to_auth(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)

    answer = await signing.ask(rp, sub=citizen.sub, document_name="Water contract", purpose="Sign your water contract")

    assert answer.status == 201, await answer.text()
    created = await answer.json()
    assert (created["status"], created["kind"]) == ("pending", "cms") and "app_link" not in created
    prompt = await signing.prompt(created["request_id"])
    assert (prompt.account_id, prompt.action, prompt.purpose) == (citizen.account_id, "sign", "Sign your water contract")
    # The whole hash binds the device's signature; its start is what the phone shows to compare.
    assert prompt.details == {"document_name": "Water contract", "kind": "cms", "sha256": CONTRACT_SHA256,
                              "sha256_start": CONTRACT_SHA256[:16]}
    [event] = await published(signing.ctx, "approval.requested", prompt.approval_id)
    assert "Water contract" not in event.model_dump_json()
    assert "opened_in_app" not in event.data  # the phone learns of it from notify's "approve on your phone" message
    stored = await signing.ctx.db["requests"].find_one({"_id": created["request_id"]})
    assert "Water contract" not in str(stored) and stored["sub"] == citizen.sub


async def test_without_a_purpose_the_prompt_says_what_is_signed(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    created = await (await signing.ask(rp, sub=citizen.sub, document_name="Lease")).json()
    assert (await signing.prompt(created["request_id"])).purpose == "Sign Lease"


async def test_a_pdf_prompt_counts_its_pages(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)

    answer = await signing.ask_pdf(rp, sub=citizen.sub)

    assert answer.status == 201, await answer.text()
    created = await answer.json()
    prompt = await signing.prompt(created["request_id"])
    assert created["kind"] == "pdf" and prompt.details["pages"] == 1 and prompt.details["kind"] == "pdf"
    document = await signing.ctx.db["documents"].find_one({"_id": created["request_id"]})
    assert b"%PDF" not in bson.encode(document)  # kept encrypted until it is signed


async def test_only_plus_citizens_sign(signing):
    rp = await signing.relying_party()
    basic = await signing.citizen(rp, assurance="basic")

    answer = await signing.ask(rp, sub=basic.sub)

    assert answer.status == 403
    body = await problem(answer)
    assert body["type"].endswith("/assurance-too-low") and "plus" in body["detail"] and body["title"] == "Assurance too low"
    assert await signing.ctx.db["requests"].count_documents({}) == 0


async def test_a_suspended_identity_does_not_sign(signing):
    rp = await signing.relying_party()
    suspended = await signing.citizen(rp, state="suspended")
    answer = await signing.ask(rp, sub=suspended.sub)
    assert answer.status == 403
    assert (await problem(answer))["detail"] == "this identity is suspended, revoked or closed and cannot sign"


async def test_clients_and_citizens_signing_has_not_heard_of_are_asked_to_retry(signing):
    rp = await signing.relying_party()
    for answer, slug in ((await signing.ask(RelyingParty("rp-unknown", "s")), "unknown-client"),
                         (await signing.ask(rp, sub="sub-not-assigned-yet"), "citizen-unknown")):
        assert answer.status == 409 and answer.headers["Retry-After"] == "1"
        body = await problem(answer)
        assert body["type"].endswith(f"/{slug}") and "not known to signing yet" in body["detail"]

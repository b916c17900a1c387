"""approval.decided: formfill acts only on a decision the citizen's device signed over exactly the prompt it built."""

from __future__ import annotations

from tests.support.auth_stand_in import Phone, published

from .conftest import problem


async def asked(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub)).json())["request_id"]
    return rp, citizen, request_id, await formfill.prompt(request_id)


async def test_a_denial_closes_the_request_and_releases_nothing(formfill):
    rp, citizen, request_id, prompt = await asked(formfill)

    await formfill.learn(citizen.phone.decided(prompt, "deny"))

    status = await (await formfill.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("denied", "access_denied")
    assert "released_fields" not in status and "receipt_id" not in status
    refused = await formfill.result(rp, request_id)
    assert refused.status == 403
    body = await problem(refused)
    assert (body["type"].split("/")[-1], body["title"], body["detail"]) == ("access_denied", "Access denied", "the citizen declined this request")
    assert await formfill.ctx.db["results"].count_documents({}) == 0
    assert await formfill.ctx.db["consents"].count_documents({}) == 0
    stored = await formfill.ctx.db["requests"].find_one({"_id": request_id})
    assert stored["decided_at"] == formfill.clock.now()


async def test_a_decision_over_another_digest_is_ignored(formfill):
    rp, citizen, request_id, prompt = await asked(formfill)

    await formfill.learn(citizen.phone.decided(prompt, digest="A" * 43))

    assert (await (await formfill.status(rp, request_id)).json())["status"] == "pending"
    assert await published(formfill.ctx, "consent.granted") == []


async def test_a_decision_signed_by_another_account_is_ignored(formfill):
    rp, citizen, request_id, prompt = await asked(formfill)

    await formfill.learn(Phone("acct-someone-else").decided(prompt))

    assert (await (await formfill.status(rp, request_id)).json())["status"] == "pending"


async def test_a_request_is_decided_once(formfill):
    rp, citizen, request_id, prompt = await asked(formfill)
    await formfill.learn(citizen.phone.decided(prompt, "deny"))

    await formfill.learn(citizen.phone.decided(prompt, "approve"))

    assert (await (await formfill.status(rp, request_id)).json())["status"] == "denied"
    assert await published(formfill.ctx, "consent.granted") == []


async def test_decisions_for_other_services_are_not_formfills(formfill):
    rp, citizen, request_id, prompt = await asked(formfill)
    decided = citizen.phone.decided(prompt)
    decided.data["requester"]["service"] = "signing"

    await formfill.learn(decided)

    assert (await (await formfill.status(rp, request_id)).json())["status"] == "pending"

"""A relying party follows its own requests: pending, then expired if nobody answered in time."""

from __future__ import annotations

import asyncio

from tests.support.polling import eventually

from .conftest import problem


async def test_a_pending_request_shows_what_was_asked(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub, fields=[("name_en", True), ("email", False)])).json())["request_id"]

    answer = await formfill.status(rp, request_id)

    assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
    assert await answer.json() == {
        "request_id": request_id, "status": "pending", "purpose": "Open a water account",
        "fields": [{"name": "name_en", "required": True}, {"name": "email", "required": False}],
        "expires_at": "2030-01-01T08:05:00+00:00"}
    waiting = await formfill.result(rp, request_id)
    assert waiting.status == 409 and waiting.headers["Retry-After"] == "1"
    assert (await problem(waiting))["type"].endswith("/not-ready")


async def test_an_unanswered_request_expires(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub)).json())["request_id"]
    prompt = await formfill.prompt(request_id)

    formfill.clock.advance(299)
    assert (await (await formfill.status(rp, request_id)).json())["status"] == "pending"
    formfill.clock.advance(1)
    assert (await (await formfill.status(rp, request_id)).json())["status"] == "expired"
    gone = await formfill.result(rp, request_id)
    assert gone.status == 410 and (await problem(gone))["detail"] == "the request expired without an answer"
    assert prompt.expires_at.isoformat() == "2030-01-01T08:05:00+00:00"  # the phone is told the same lifetime


async def test_another_clients_request_is_not_found(formfill):
    rp, other = await formfill.relying_party(), await formfill.relying_party()
    request_id = (await (await formfill.ask(rp)).json())["request_id"]

    for answer in (await formfill.status(other, request_id), await formfill.result(other, request_id)):
        assert answer.status == 404
        assert (await problem(answer))["detail"] == "no such request for this client"


async def test_a_held_result_is_released_when_the_citizen_approves_and_a_held_status_when_they_decline(formfill):
    # ?wait= (libs/held_requests.py; tests/service/signing/test_held_requests.py has the rest): the
    # relying party's one request is answered at the decision's commit, not polled for.
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    answers = formfill.ctx.answers

    async def held(path: str) -> asyncio.Task:
        before = answers.held_count
        task = asyncio.create_task(formfill.http.get(path, params={"wait": "20"}, headers=formfill.rp_token(rp)))
        await eventually(lambda: answers.held_count > before or task.done(), timeout_s=10)
        assert not task.done(), "answered at once instead of being held"
        return task

    approved_id = (await (await formfill.ask(rp, sub=citizen.sub)).json())["request_id"]
    release = await held(f"/v1/formfill/requests/{approved_id}/result")
    await formfill.learn(citizen.phone.decided(await formfill.prompt(approved_id)))
    released = await asyncio.wait_for(release, 10)
    assert released.status == 200 and released.content_type == "application/jwt"

    declined_id = (await (await formfill.ask(rp, sub=citizen.sub)).json())["request_id"]
    status = await held(f"/v1/formfill/requests/{declined_id}")
    await formfill.learn(citizen.phone.decided(await formfill.prompt(declined_id), decision="deny"))
    assert (await (await asyncio.wait_for(status, 10)).json())["status"] == "denied"
    refused = await formfill.http.get(f"/v1/formfill/requests/{declined_id}", params={"wait": "x"}, headers=formfill.rp_token(rp))
    assert refused.status == 422 and (await problem(refused))["type"].endswith("/validation-failed")

"""A relying party follows its own requests: pending, expired if unanswered, and a result kept only so long."""

from __future__ import annotations

from datetime import timedelta

from .conftest import CONTRACT_SHA256, problem


async def test_a_pending_request_shows_what_is_to_be_signed(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]

    answer = await signing.status(rp, request_id)

    assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
    created_at = signing.clock.now().replace(microsecond=0)
    assert await answer.json() == {
        "request_id": request_id, "status": "pending", "kind": "cms", "document_name": "Water contract",
        "sha256": CONTRACT_SHA256, "created_at": created_at.isoformat(),
        "expires_at": (created_at + timedelta(seconds=300)).isoformat()}
    waiting = await signing.result(rp, request_id)
    assert waiting.status == 409 and waiting.headers["Retry-After"] == "1"
    assert (await problem(waiting))["type"].endswith("/not-ready")


async def test_an_unanswered_request_expires(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]
    prompt = await signing.prompt(request_id)

    signing.clock.advance(301)

    assert (await (await signing.status(rp, request_id)).json())["status"] == "expired"
    gone = await signing.result(rp, request_id)
    assert gone.status == 410 and (await problem(gone))["detail"] == "the request expired without an answer"
    # A late "yes" signs nothing: the prompt it answers has expired (auth refuses it; here it is simply ignored).
    assert prompt.expired(signing.clock.now())


async def test_a_signed_result_is_kept_until_it_expires(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]
    await signing.learn(citizen.phone.decided(await signing.prompt(request_id)))
    assert (await signing.result(rp, request_id)).status == 200

    signing.clock.advance(1801)  # SIGNING_RESULT_TTL_S

    gone = await signing.result(rp, request_id)
    assert gone.status == 410 and (await problem(gone))["detail"] == "the signed result has expired"
    assert (await (await signing.status(rp, request_id)).json())["status"] == "signed"


async def test_another_clients_request_is_not_found(signing):
    rp, other = await signing.relying_party(), await signing.relying_party()
    request_id = (await (await signing.ask(rp)).json())["request_id"]
    for answer in (await signing.status(other, request_id), await signing.result(other, request_id)):
        assert answer.status == 404 and (await problem(answer))["detail"] == "no such request for this client"

"""An anonymous signing request: its app link binds it to the citizen who opens it, if they may sign."""

from __future__ import annotations

from tests.support.auth_stand_in import published, state_changed

from .conftest import problem


async def claim(signing, citizen, request_id):
    return await signing.http.post(f"/v1/signing/requests/{request_id}/claim", headers=signing.device_token(citizen))


async def test_the_link_binds_the_request_and_sends_the_prompt(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    created = await (await signing.ask(rp)).json()
    request_id = created["request_id"]
    assert created["app_link"] == f"harbourid://sign?request={request_id}"

    answer = await claim(signing, citizen, request_id)

    assert answer.status == 201, await answer.text()
    assert await answer.json() == {"request_id": request_id, "approval_id": f"sign-{request_id}", "client_name": "Harbour Water"}
    assert (await signing.prompt(request_id)).account_id == citizen.account_id
    # The app that opened the link shows the prompt: the event tells notify not to call the citizen to the app.
    [event] = await published(signing.ctx, "approval.requested", f"sign-{request_id}")
    assert event.data["opened_in_app"] is True


async def test_a_citizen_who_may_not_sign_closes_the_request(signing):
    rp = await signing.relying_party()
    basic = await signing.citizen(rp, assurance="basic")
    request_id = (await (await signing.ask(rp)).json())["request_id"]

    answer = await claim(signing, basic, request_id)

    assert answer.status == 403 and (await problem(answer))["type"].endswith("/assurance-too-low")
    status = await (await signing.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("refused", "assurance-too-low")
    [refused] = await published(signing.ctx, "signature.refused", request_id)
    assert refused.data == {"request_id": request_id, "sub": basic.sub, "reason": "assurance-too-low"}
    assert await published(signing.ctx, "approval.requested") == []
    result = await signing.result(rp, request_id)
    assert result.status == 403
    body = await problem(result)
    assert (body["type"].split("/")[-1], body["title"], body["detail"]) == ("assurance-too-low", "Assurance too low", "this citizen cannot sign")


async def test_a_citizen_signing_has_not_heard_of_changes_nothing(signing):
    rp = await signing.relying_party()
    stranger = await signing.citizen(rp)
    await signing.ctx.db["citizens"].delete_one({"_id": stranger.account_id})
    request_id = (await (await signing.ask(rp)).json())["request_id"]

    answer = await claim(signing, stranger, request_id)

    assert answer.status == 409 and answer.headers["Retry-After"] == "1"
    assert (await signing.ctx.db["requests"].find_one({"_id": request_id}))["account_id"] is None  # still anyone's to open


async def test_a_citizen_whose_activation_signing_has_not_heard_of_yet_changes_nothing(signing):
    # Activated at auth (the device has its token), still "pending" in signing's projection: the activation's
    # identity.state_changed is on its way. A refusal here would close the request for good.
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp, state="pending")
    request_id = (await (await signing.ask(rp)).json())["request_id"]

    early = await claim(signing, citizen, request_id)

    assert early.status == 409 and early.headers["Retry-After"] == "1"
    assert (await problem(early))["type"].endswith("/citizen-unknown")
    assert (await signing.ctx.db["requests"].find_one({"_id": request_id}))["account_id"] is None
    assert (await (await signing.status(rp, request_id)).json())["status"] == "pending"
    await signing.learn(state_changed(citizen.account_id, was="pending", to="active"))
    assert (await claim(signing, citizen, request_id)).status == 201


async def test_a_link_is_opened_once_and_in_time(signing):
    rp = await signing.relying_party()
    first, second = await signing.citizen(rp), await signing.citizen(rp)
    opened, late = (await (await signing.ask(rp)).json())["request_id"], (await (await signing.ask(rp)).json())["request_id"]
    assert (await claim(signing, first, opened)).status == 201

    again = await claim(signing, second, opened)
    signing.clock.advance(301)
    expired = await claim(signing, second, late)

    for answer in (again, expired):
        assert answer.status == 409
        assert (await problem(answer))["detail"] == "this request has expired or was opened by someone else"

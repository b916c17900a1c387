"""An anonymous request (client-credentials token): its app link, opened once, by one citizen, in time."""

from __future__ import annotations

from tests.support.auth_stand_in import published

from .conftest import problem


async def test_the_link_binds_the_request_and_sends_the_prompt(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    created = await (await formfill.ask(rp)).json()
    request_id = created["request_id"]
    assert created["app_link"] == f"harbourid://formfill?request={request_id}"
    assert await formfill.ctx.db["outbox"].count_documents({"type": "approval.requested"}) == 0  # nobody to ask yet

    claimed = await formfill.http.post(f"/v1/formfill/requests/{request_id}/claim", headers=formfill.device_token(citizen))

    assert claimed.status == 201, await claimed.text()
    assert await claimed.json() == {"request_id": request_id, "approval_id": f"formfill-{request_id}", "client_name": "Harbour Water"}
    prompt = await formfill.prompt(request_id)
    assert prompt.account_id == citizen.account_id and prompt.purpose == "Open a water account"
    [event] = await published(formfill.ctx, "approval.requested", prompt.approval_id)
    assert event.data["opened_in_app"] is True  # the app that claimed shows it: notify calls nobody to the app


async def test_a_link_opened_by_someone_else_is_unusable(formfill):
    rp = await formfill.relying_party()
    first, second = await formfill.citizen(rp), await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp)).json())["request_id"]
    assert (await formfill.http.post(f"/v1/formfill/requests/{request_id}/claim", headers=formfill.device_token(first))).status == 201

    again = await formfill.http.post(f"/v1/formfill/requests/{request_id}/claim", headers=formfill.device_token(second))

    assert again.status == 409
    body = await problem(again)
    assert body["type"].endswith("/link-unusable") and body["detail"] == "this request has expired or was opened by someone else"


async def test_an_expired_link_is_unusable(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp)).json())["request_id"]

    formfill.clock.advance(301)
    late = await formfill.http.post(f"/v1/formfill/requests/{request_id}/claim", headers=formfill.device_token(citizen))

    assert late.status == 409 and (await problem(late))["type"].endswith("/link-unusable")
    assert (await (await formfill.status(rp, request_id)).json())["status"] == "expired"


async def test_claiming_needs_a_device_token(formfill):
    rp = await formfill.relying_party()
    request_id = (await (await formfill.ask(rp)).json())["request_id"]
    answer = await formfill.http.post(f"/v1/formfill/requests/{request_id}/claim", headers=formfill.rp_token(rp))
    assert answer.status == 401 and "Bearer" in answer.headers["WWW-Authenticate"]

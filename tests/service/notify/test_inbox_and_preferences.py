"""The citizen's inbox and preferences: list, read once, opt out of an agency, choose a language; their own only."""

from __future__ import annotations

from .conftest import problem, unique


async def test_reading_a_message_moves_its_notification_to_read_once(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    status = await notify.delivered(agency, citizen)
    [item] = [m for m in await notify.inbox(citizen, unread="true") if m["notification_id"] == status["notification_id"]]

    notify.clock.advance(30)
    read = await notify.http.post(f"/v1/inbox/{item['id']}/read", headers=notify.device_token(citizen))
    again = await notify.http.post(f"/v1/inbox/{item['id']}/read", headers=notify.device_token(citizen))

    assert read.status == again.status == 200
    assert (await read.json())["read_at"] == (await again.json())["read_at"] == notify.clock.now().isoformat()
    after = await notify.status(agency, status["notification_id"])
    assert after["status"] == "read" and after["timeline"]["read"] == notify.clock.now().isoformat()
    assert status["notification_id"] not in {m["notification_id"] for m in await notify.inbox(citizen, unread="true")}


async def test_another_citizens_message_is_not_found(notify):
    agency = await notify.agency()
    citizen, other = await notify.citizen(agency), await notify.citizen(agency)
    await notify.delivered(agency, citizen)
    [item] = [m for m in await notify.inbox(citizen) if m["kind"] == "agency"]

    answer = await notify.http.post(f"/v1/inbox/{item['id']}/read", headers=notify.device_token(other))

    assert answer.status == 404 and (await problem(answer))["detail"] == "no such message in your inbox"


async def test_the_inbox_query_is_checked(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    for params, detail in (({"unread": "yes"}, "unread is true or false"), ({"unred": "true"}, "unknown query parameters: unred")):
        answer = await notify.http.get("/v1/inbox", params=params, headers=notify.device_token(citizen))
        assert answer.status == 400
        refused = await problem(answer)
        assert (refused["type"].rsplit("/", 1)[1], refused["detail"]) == ("bad-query", detail)


async def test_an_opted_out_agency_is_suppressed_and_opting_in_again_delivers(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)

    chosen = await notify.preferences(citizen, {"opted_out": [agency.client_id], "language": "zh-CN"})
    assert chosen == {"language": "zh-CN", "effective_language": "zh-CN", "channels": ["inbox", "push"],
                      "opted_out": [agency.client_id], "quiet_hours": None}
    suppressed = await notify.delivered(agency, citizen)
    assert suppressed["status"] == "suppressed" and "delivered" not in suppressed["timeline"]
    assert all(m["client_id"] != agency.client_id for m in await notify.inbox(citizen))

    await notify.preferences(citizen, {})
    assert (await notify.delivered(agency, citizen))["status"] == "delivered"


async def test_preferences_start_from_the_enrolment_language_and_keep_the_inbox(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency, language="zh-HK")

    shown = await notify.http.get("/v1/preferences", headers=notify.device_token(citizen))
    refused = await notify.http.put("/v1/preferences", json={"channels": ["push"]}, headers=notify.device_token(citizen))

    assert shown.headers["Cache-Control"] == "no-store"
    assert await shown.json() == {"language": None, "effective_language": "zh-HK", "channels": ["inbox", "push"],
                                  "opted_out": [], "quiet_hours": None}
    assert refused.status == 422 and (await problem(refused))["type"].endswith("/validation-failed")


async def test_without_the_push_channel_no_push_is_queued(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    await notify.preferences(citizen, {"channels": ["inbox"]})

    status = await notify.delivered(agency, citizen, reference=unique("ref"))

    assert status["status"] == "delivered"
    assert await notify.ctx.db["push_batches"].count_documents({"notification_ids": status["notification_id"]}) == 0
    assert await notify.ctx.db["pushes"].count_documents({"notification_id": status["notification_id"]}) == 0

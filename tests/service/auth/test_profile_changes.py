"""Contact changes (profile/changes.py): auth in process on the real broker and database, a FrozenClock for the
code's lifetime, the citizen app library as the phone. The code is read from the event auth sealed to notify,
opened with notify's key as notify would."""

from __future__ import annotations

import asyncio
import json

import pytest

from clients.citizen_app import AppError
from libs.crypto import unseal


async def outbox(auth_service, account_id: str, event_type: str) -> list[dict]:
    docs = await auth_service.context.db["outbox"].find({"key": account_id, "type": event_type}).sort("seq", 1).to_list()
    return [json.loads(doc["value"]) for doc in docs]


def refused(caught: pytest.ExceptionInfo, status: int, slug: str) -> dict:
    assert caught.value.status == status and caught.value.problem["type"].endswith("/" + slug), caught.value.problem
    return caught.value.problem


async def code_of(auth_service, service_secrets, account_id: str, change_id: str) -> str:
    [event] = [e for e in await outbox(auth_service, account_id, "identity.contact_verification") if e["data"]["change_id"] == change_id]
    return unseal(event["data"]["sealed_message"], json.loads(service_secrets["HARBOUR_NOTIFY_SEALING_KEY"]))["code"]


async def test_a_burst_of_wrong_codes_is_evaluated_five_times_at_most(auth_service, service_secrets, tmp_path):
    app = await auth_service.citizen(tmp_path)
    account_id = app.profile.account_id
    asked = await app.change_profile("phone", "+85261234567")
    code = await code_of(auth_service, service_secrets, account_id, asked["change_id"])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    token = await app.device_token()

    async def guess(value: str) -> tuple[int, dict]:
        path = f"/v1/profile/changes/{asked['change_id']}/confirmation"
        response = await auth_service.client.post(path, json={"code": value}, headers=app.device_headers("POST", path, token))
        return response.status, await response.json()

    results = await asyncio.gather(*(guess(wrong) for _ in range(20)))
    assert sorted(body["attempts_left"] for status, body in results if status == 400) == [1, 2, 3, 4]
    assert [status for status, _ in results].count(403) == 16
    assert all(body["type"].endswith("/code-locked") for status, body in results if status == 403)
    assert (await guess(code))[0] == 403  # the right code, too late
    assert await outbox(auth_service, account_id, "identity.profile_updated") == []
    assert (await auth_service.context.db["profile_changes"].find_one({"_id": asked["change_id"]}))["attempts"] == 5


async def test_an_expired_or_replaced_code_changes_nothing_and_auth_holds_the_value_only_sealed(auth_service, service_secrets,
                                                                                                clock, tmp_path):
    app = await auth_service.citizen(tmp_path)
    account_id = app.profile.account_id
    first = await app.change_profile("email", "first@example.hk")
    stored = await auth_service.context.db["profile_changes"].find_one({"_id": first["change_id"]})
    assert "first@example.hk" not in str(stored)  # sealed to formfill and to notify: auth cannot open either
    code = await code_of(auth_service, service_secrets, account_id, first["change_id"])
    clock.advance(10 * 60 + 1)
    with pytest.raises(AppError) as expired:
        await app.confirm_profile_change(first["change_id"], code)
    refused(expired, 410, "code-expired")

    second = await app.change_profile("email", "second@example.hk")
    third = await app.change_profile("email", "third@example.hk")  # replaces the second: its code dies
    with pytest.raises(AppError) as replaced:
        await app.confirm_profile_change(second["change_id"], await code_of(auth_service, service_secrets, account_id,
                                                                            second["change_id"]))
    refused(replaced, 404, "no-such-change")
    assert await outbox(auth_service, account_id, "identity.profile_updated") == []

    # Another citizen cannot even tell the change exists.
    other = await auth_service.citizen(tmp_path, "other")
    with pytest.raises(AppError) as foreign:
        await other.confirm_profile_change(third["change_id"], "000000")
    refused(foreign, 404, "no-such-change")

    confirmed = await app.confirm_profile_change(third["change_id"],
                                                 await code_of(auth_service, service_secrets, account_id, third["change_id"]))
    assert confirmed["status"] == "verified" and confirmed["channel"] == "email"
    [event] = await outbox(auth_service, account_id, "identity.profile_updated")
    assert event["data"]["verification"] == {"method": "one_time_code", "time": confirmed["verified_at"], "channel": "email"}
    assert unseal(event["data"]["sealed_profile"], json.loads(service_secrets["HARBOUR_FORMFILL_SEALING_KEY"])) == {
        "email": "third@example.hk"}
    assert unseal(event["data"]["sealed_contacts"], json.loads(service_secrets["HARBOUR_NOTIFY_SEALING_KEY"])) == {
        "email": "third@example.hk"}
    used = await auth_service.context.db["profile_changes"].find_one({"_id": third["change_id"]})
    assert used["status"] == "used" and "sealed_profile" not in used and "sealed_contacts" not in used


async def test_a_burst_of_changes_gets_five_through_in_the_hour(auth_service, clock, tmp_path):
    app = await auth_service.citizen(tmp_path)
    token = await app.device_token()

    async def change(n: int) -> int:
        response = await auth_service.client.post("/v1/profile/changes", json={"field": "address", "value": f"Flat {n}, 1 Main St"},
                                                  headers=app.device_headers("POST", "/v1/profile/changes", token))
        return response.status

    statuses = await asyncio.gather(*(change(n) for n in range(12)))
    assert sorted(statuses) == [202] * 5 + [429] * 7
    [window] = await auth_service.context.db["profile_changes"].find({"_id": f"window:{app.profile.account_id}"}).to_list()
    with pytest.raises(AppError) as no_change:  # the hour's count is no change a code could confirm
        await app.confirm_profile_change(window["_id"], "123456")
    refused(no_change, 404, "no-such-change")
    clock.advance(3600 + 1)  # the hour is over
    assert await change(99) == 202

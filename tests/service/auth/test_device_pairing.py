"""Adding a device from an existing one (devices/pairing.py): the new phone's code, the old phone's signed approval.

auth in process on the real broker and database, with a FrozenClock for the lifetimes; the citizen app library
plays both phones.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from clients.citizen_app import AppError
from clients.citizen_app.profile import ProfileError


async def outbox(auth_service, account_id: str, event_type: str) -> list[dict]:
    docs = await auth_service.context.db["outbox"].find({"key": account_id, "type": event_type}).to_list()
    return [json.loads(doc["value"]) for doc in docs]


async def active_devices(auth_service, account_id: str) -> list[dict]:
    return await auth_service.context.db["devices"].find({"account_id": account_id, "status": "active"}).to_list()


def refused(caught: pytest.ExceptionInfo, status: int, slug: str) -> dict:
    assert caught.value.status == status and caught.value.problem["type"].endswith("/" + slug), caught.value.problem
    return caught.value.problem


async def test_a_new_phone_is_bound_to_the_account_whose_phone_approved_its_code(auth_service, tmp_path):
    old = await auth_service.citizen(tmp_path, "old phone")
    new = auth_service.citizen_app(tmp_path, "new")
    started = await new.start_pairing("tablet")
    assert started["status"] == "waiting" and len(started["code"]) == 9 and started["code"][4] == "-"
    waiting = await new.pairing_status()
    assert waiting["status"] == "waiting" and "matching_code" not in waiting
    with pytest.raises(ProfileError):  # nothing bound yet: no device id to ask a token for
        await new.device_token()

    outcome = await old.approve_pairing(started["code"].lower().replace("-", " "),  # any spelling of the code
                                        key_thumbprint=started["key_thumbprint"])
    assert outcome["status"] == "approved" and outcome["device_name"] == "tablet"
    status = await new.finish_pairing(timeout_s=5)
    assert status["status"] == "bound" and status["account_id"] == old.profile.account_id
    assert new.profile.device_id == status["device_id"] and new.profile.pairing_id is None

    # The new phone acts for the same account with its own key: its token, its list, its decisions.
    listed = await new.devices()
    assert listed["current_device_id"] == status["device_id"]
    assert {d["name"]: d["status"] for d in listed["devices"]} == {"old phone": "active", "tablet": "active"}
    [added] = [d for d in listed["devices"] if d["name"] == "tablet"]
    assert added["key_thumbprint"] == started["key_thumbprint"]

    # The events of the approval's transaction: the identity event (notify's alert) and the audit record.
    account_id = old.profile.account_id
    [event] = await outbox(auth_service, account_id, "identity.device_added")
    assert event["data"] == {"account_id": account_id, "device_id": status["device_id"],
                             "approved_by": old.profile.device_id, "how": "paired"}
    audits = [e["data"] for e in await outbox(auth_service, account_id, "audit.recorded")]
    [paired] = [a for a in audits if a["action"] == "device.pair"]
    assert paired["actor"] == old.profile.device_id and paired["outcome"] == "bound"
    assert [a for a in audits if a["action"] == "device.pair_claim"]

    # The code is single use: entered again (by either phone), it is unknown.
    with pytest.raises(AppError) as again:
        await old.claim_pairing(started["code"])
    refused(again, 400, "invalid-pairing-code")


async def test_a_pairing_nobody_claims_or_approves_expires_and_binds_nothing(auth_service, clock, tmp_path):
    old = await auth_service.citizen(tmp_path, "old")
    settings = auth_service.context.settings
    late = auth_service.citizen_app(tmp_path, "late")
    started = await late.start_pairing("late")
    clock.advance(settings.pairing_ttl_s + 1)
    assert (await late.pairing_status())["status"] == "expired"
    with pytest.raises(AppError) as expired:
        await old.claim_pairing(started["code"])
    refused(expired, 400, "invalid-pairing-code")

    # Claimed, but the prompt is left unanswered past its lifetime: the approval comes too late.
    slow = auth_service.citizen_app(tmp_path, "slow")
    started = await slow.start_pairing("slow")
    claimed = await old.claim_pairing(started["code"])
    assert (await slow.pairing_status())["status"] == "claimed"
    prompt = await old.show(claimed["approval_id"])
    clock.advance(settings.pairing_approval_ttl_s + 1)
    with pytest.raises(AppError) as too_late:
        await old.decide(claimed["approval_id"], "approve", prompt=prompt)
    refused(too_late, 410, "expired")
    assert (await slow.finish_pairing(timeout_s=1))["status"] == "expired"
    assert len(await active_devices(auth_service, old.profile.account_id)) == 1


async def test_a_denied_pairing_binds_nothing_and_cannot_be_approved_after(auth_service, tmp_path):
    old = await auth_service.citizen(tmp_path, "old")
    new = auth_service.citizen_app(tmp_path, "new")
    started = await new.start_pairing("stranger's phone")
    denied = await old.approve_pairing(started["code"], approve=False)
    assert denied["status"] == "denied"
    assert (await new.finish_pairing(timeout_s=1))["status"] == "denied" and new.profile.device_id is None
    with pytest.raises(AppError) as decided:
        await old.approve(denied["approval_id"])
    refused(decided, 409, "already-decided")
    assert len(await active_devices(auth_service, old.profile.account_id)) == 1


async def test_another_accounts_device_can_neither_decide_nor_take_over_a_claimed_code(auth_service, tmp_path):
    chan = await auth_service.citizen(tmp_path, "chan")
    lee = await auth_service.citizen(tmp_path, "lee")
    new = auth_service.citizen_app(tmp_path, "new")
    started = await new.start_pairing("chan's tablet")
    claimed = await chan.claim_pairing(started["code"])
    # Lee's phone cannot see Chan's prompt, nor sign a decision on it...
    with pytest.raises(AppError) as hidden:
        await lee.show(claimed["approval_id"])
    refused(hidden, 404, "not-found")
    prompt = await chan.show(claimed["approval_id"])
    # The new phone now shows the prompt's matching code: the citizen compares the two screens before approving.
    shown = await new.pairing_status()
    assert shown["status"] == "claimed" and shown["matching_code"] == claimed["matching_code"] == prompt["matching_code"]
    assert len(prompt["matching_code"]) == 4 and prompt["matching_code"].isdigit()
    with pytest.raises(AppError) as not_lees:
        await lee.decide(claimed["approval_id"], "approve", prompt=prompt)
    refused(not_lees, 404, "not-found")
    # ...nor claim the code for its own account now that it was entered.
    with pytest.raises(AppError) as taken:
        await lee.claim_pairing(started["code"])
    refused(taken, 400, "invalid-pairing-code")
    assert (await new.pairing_status())["status"] == "claimed"
    assert len(await active_devices(auth_service, lee.profile.account_id)) == 1

    await chan.approve(claimed["approval_id"])
    status = await new.finish_pairing(timeout_s=5)
    assert status["status"] == "bound" and status["account_id"] == chan.profile.account_id
    assert len(await active_devices(auth_service, lee.profile.account_id)) == 1
    assert len(await active_devices(auth_service, chan.profile.account_id)) == 2


async def test_guessing_codes_is_cut_off_even_in_a_concurrent_burst(auth_service, clock, tmp_path):
    attacker = await auth_service.citizen(tmp_path, "attacker")
    victim_phone = auth_service.citizen_app(tmp_path, "victim")
    started = await victim_phone.start_pairing("victim")
    limit = auth_service.context.settings.pairing_max_wrong_codes
    token = await attacker.device_token()

    async def guess(code: str) -> tuple[int, dict, str | None]:
        response = await auth_service.client.post("/v1/devices/pairings/claim", json={"code": code},
                                                  headers=attacker.device_headers("POST", "/v1/devices/pairings/claim", token))
        return response.status, await response.json(), response.headers.get("Retry-After")

    results = await asyncio.gather(*(guess(f"ZZZZ-{i:04d}".replace("0", "Z").replace("1", "Y")) for i in range(20)))
    evaluated = [body for status, body, _ in results if status == 400]
    cut_off = [(body, retry) for status, body, retry in results if status == 429]
    assert len(evaluated) + len(cut_off) == 20, results
    assert sorted(body["attempts_left"] for body in evaluated) == list(range(limit)), evaluated
    assert all(body["type"].endswith("/too-many-pairing-codes") and int(retry) > 0 for body, retry in cut_off)
    # The right code now: cut off too, and the pairing still waits for its citizen.
    status, body, _ = await guess(started["code"])
    assert status == 429 and (await victim_phone.pairing_status())["status"] == "waiting"
    # The window ends: the account may enter codes again.
    clock.advance(auth_service.context.settings.pairing_wrong_code_window_s + 1)
    other = auth_service.citizen_app(tmp_path, "other")
    fresh = await other.start_pairing("other")
    assert (await attacker.claim_pairing(fresh["code"]))["status"] == "pending"


async def test_bad_pairing_requests_are_refused_as_problems(auth_service, tmp_path):
    phone = await auth_service.citizen(tmp_path, "phone")
    client = auth_service.client
    token = await phone.device_token()
    for body in ({}, {"code": "AB"}, {"code": "ABCD-EFGH", "extra": 1}, {"code": 12345678}):
        response = await client.post("/v1/devices/pairings/claim", json=body,
                                     headers=phone.device_headers("POST", "/v1/devices/pairings/claim", token))
        assert response.status in (400, 422) and response.content_type == "application/problem+json", body
    response = await client.post("/v1/devices/pairings/claim", json={"code": "ABCD-EFGH"})
    assert response.status == 401
    response = await client.post("/v1/devices/pairings", json={"public_key": {"kty": "EC"}, "proof": "x" * 20})
    assert response.status == 400 and (await response.json())["type"].endswith("/invalid-key")
    response = await client.get("/v1/devices/pairings/pair-nothing-here")
    assert response.status == 404 and (await response.json())["type"].endswith("/no-such-pairing")


async def test_a_citizen_names_devices_and_only_their_own(auth_service, tmp_path):
    phone = await auth_service.citizen(tmp_path, "phone")
    other = await auth_service.citizen(tmp_path, "other")
    renamed = await phone.rename_device(phone.profile.device_id, "  Chan's Pixel  ")
    assert renamed["name"] == "Chan's Pixel" and renamed["device_id"] == phone.profile.device_id
    assert [d["name"] for d in (await phone.devices())["devices"]] == ["Chan's Pixel"]
    with pytest.raises(AppError) as not_mine:
        await other.rename_device(phone.profile.device_id, "mine now")
    refused(not_mine, 404, "not-found")
    with pytest.raises(AppError) as empty:
        await phone.rename_device(phone.profile.device_id, "   ")
    assert empty.value.status in (400, 422)
    assert [d["name"] for d in (await phone.devices())["devices"]] == ["Chan's Pixel"]


async def test_only_an_active_device_of_an_active_account_adds_a_device(auth_service, tmp_path):
    from services.auth.identity.accounts import change_state

    auth = auth_service.context
    old = await auth_service.citizen(tmp_path, "old")
    spare = auth_service.citizen_app(tmp_path, "spare")
    # A second device of the account, then revoked: it can no longer enter codes.
    started = await spare.start_pairing("spare")
    await old.approve_pairing(started["code"])
    assert (await spare.finish_pairing(timeout_s=5))["status"] == "bound"
    await old.revoke(spare.profile.device_id)
    spare.forget_token()
    newcomer = auth_service.citizen_app(tmp_path, "newcomer")
    started = await newcomer.start_pairing("newcomer")
    with pytest.raises(AppError) as revoked:
        await spare.claim_pairing(started["code"])
    refused(revoked, 401, "device-inactive")

    # The account suspended between the claim and the approval: the approval binds nothing.
    claimed = await old.claim_pairing(started["code"])
    prompt = await old.show(claimed["approval_id"])
    await auth.transaction(lambda session: change_state(auth, session, old.profile.account_id, "suspended", reason="test"))
    with pytest.raises(AppError) as suspended:
        await old.decide(claimed["approval_id"], "approve", prompt=prompt)
    refused(suspended, 403, "account-inactive")
    assert (await newcomer.pairing_status())["status"] == "claimed"
    assert [d["_id"] for d in await active_devices(auth_service, old.profile.account_id)] == [old.profile.device_id]

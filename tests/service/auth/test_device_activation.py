"""Binding a first device with the kiosk slip's activation code: lifetime, wrong tries, one use."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from clients.citizen_app import AppError
from libs.tokens import generate_private_key, public_jwk, sign


async def test_the_activation_code_binds_one_device_and_activates_the_account(auth_service, tmp_path):
    enrolment = await auth_service.enrolled(tmp_path)
    phone = auth_service.citizen_app(tmp_path)
    bound = await phone.activate(enrolment["account_id"], enrolment["activation_code"])
    assert bound["account_id"] == enrolment["account_id"]
    account = await auth_service.context.db["accounts"].find_one({"_id": enrolment["account_id"]})
    assert account["state"] == "active" and account["activation"]["status"] == "used"
    # The citizen's new-device alert (notify) comes from this event, on identity.events, with the activation.
    published = await auth_service.context.db["outbox"].find(
        {"key": enrolment["account_id"], "type": "identity.device_activated"}).to_list()
    assert [(doc["topic"], json.loads(doc["value"])["data"]) for doc in published] == [
        ("identity.events", {"account_id": enrolment["account_id"], "device_id": bound["device_id"], "how": "activation code"})]

    with pytest.raises(AppError) as again:
        await auth_service.citizen_app(tmp_path, "second").activate(enrolment["account_id"], enrolment["activation_code"])
    assert again.value.status == 400 and again.value.problem["type"].endswith("/used")


async def test_the_code_expires_after_its_lifetime(auth_service, clock, tmp_path):
    enrolment = await auth_service.enrolled(tmp_path)
    clock.advance(auth_service.context.settings.activation_ttl_s + 1)
    with pytest.raises(AppError) as expired:
        await auth_service.citizen_app(tmp_path).activate(enrolment["account_id"], enrolment["activation_code"])
    assert expired.value.status == 400
    assert expired.value.problem["type"].endswith("/expired") and expired.value.problem["title"] == "Expired"
    assert expired.value.problem["detail"] == "the activation code has expired: ask for a new one"


async def test_wrong_codes_count_down_then_lock_the_code_for_good(auth_service, tmp_path):
    enrolment = await auth_service.enrolled(tmp_path)
    phone = auth_service.citizen_app(tmp_path)
    attempts = auth_service.context.settings.activation_max_attempts
    for left in range(attempts - 1, 0, -1):
        with pytest.raises(AppError) as wrong:
            await phone.activate(enrolment["account_id"], "22222-33333")
        assert wrong.value.status == 400 and wrong.value.problem["type"].endswith("/invalid-activation")
        assert wrong.value.problem["attempts_left"] == left
    with pytest.raises(AppError) as locked:
        await phone.activate(enrolment["account_id"], "22222-33333")
    assert locked.value.status == 403 and locked.value.problem["type"].endswith("/locked")
    with pytest.raises(AppError) as still_locked:  # the right code too, now
        await phone.activate(enrolment["account_id"], enrolment["activation_code"])
    assert still_locked.value.status == 403 and still_locked.value.problem["title"] == "Locked"


async def test_concurrent_wrong_codes_cannot_get_past_the_attempt_limit(auth_service, tmp_path):
    """Issue 14 (14b): 20 wrong codes fired at once are evaluated at most 5 times, then the code is locked."""
    enrolment = await auth_service.enrolled(tmp_path)
    account_id = enrolment["account_id"]
    client = auth_service.client

    async def activation_body(code: str) -> dict:
        key = generate_private_key()
        challenge = await (await client.post("/v1/devices/challenges", json={})).json()
        now = int(time.time())
        proof = sign({"nonce": challenge["nonce"], "aud": challenge["audience"], "iat": now, "exp": now + 120}, key)
        return {"account_id": account_id, "activation_code": code, "public_key": public_jwk(key),
                "device_name": "guess", "proof": proof}

    async def activate(body: dict) -> tuple[int, dict]:
        response = await client.post("/v1/devices", json=body)
        return response.status, await response.json()

    # Every guess is prepared first (own key, own nonce) so that all 20 reach auth together.
    bodies = [await activation_body(f"ZZZZZ-{i:05d}".replace("0", "Z").replace("1", "Y")) for i in range(20)]
    results = await asyncio.gather(*(activate(body) for body in bodies))
    evaluated = [body for status, body in results if status == 400]
    locked = [body for status, body in results if status == 403]
    assert all(status in (400, 403) for status, _ in results), results
    assert all(body["type"].endswith("/invalid-activation") for body in evaluated), evaluated
    assert sorted(body["attempts_left"] for body in evaluated) == [1, 2, 3, 4] and len(locked) == 16, results
    assert all(body["type"].endswith("/locked") for body in locked)
    # The right code after the burst: refused, and no device bound.
    status, body = await activate(await activation_body(enrolment["activation_code"]))
    assert status == 403 and body["type"].endswith("/locked")
    db = auth_service.context.db
    account = await db.accounts.find_one({"_id": account_id})
    # Each evaluated guess took one attempt; no more than the limit were ever evaluated.
    assert account["activation"]["attempts"] == 5 and account["activation"]["status"] == "locked"
    assert account["state"] == "pending" and await db.devices.count_documents({"account_id": account_id}) == 0

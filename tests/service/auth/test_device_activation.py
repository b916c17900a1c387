"""Binding a first device with the kiosk slip's activation code: lifetime, wrong tries, one use."""

from __future__ import annotations

import pytest

from clients.citizen_app import AppError


async def test_the_activation_code_binds_one_device_and_activates_the_account(auth_service, tmp_path):
    enrolment = await auth_service.enrolled(tmp_path)
    phone = auth_service.citizen_app(tmp_path)
    bound = await phone.activate(enrolment["account_id"], enrolment["activation_code"])
    assert bound["account_id"] == enrolment["account_id"]
    account = await auth_service.context.db["accounts"].find_one({"_id": enrolment["account_id"]})
    assert account["state"] == "active" and account["activation"]["status"] == "used"

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

"""A kiosk's replacement racing an activation with the old code (identity/reproofing.py, devices/binding.py).

The old code is checked, then a replacement commits a new code, then the old code's binding transaction runs:
it must not bind a device with the code the replacement killed (nor use up the new one). The steps are
the domain's own functions, interleaved by hand on the real database.
"""

from __future__ import annotations

import pytest

from libs.tokens import generate_private_key, public_jwk
from services.auth.devices.binding import ActivationRequest, bind_device, check_activation_code
from services.auth.errors import ActivationCodeUsed
from services.auth.identity.reproofing import replace_devices


def request_for(account_id: str, code: str) -> tuple[ActivationRequest, dict[str, str]]:
    jwk = public_jwk(generate_private_key())
    # bind_device takes the possession proof as checked already (activate_device verifies it first).
    return ActivationRequest(account_id=account_id, activation_code=code, public_key=jwk, proof="x" * 20), jwk


async def test_an_old_code_checked_before_a_replacement_binds_nothing_after_it(auth_service, tmp_path):
    auth = auth_service.context
    enrolment = await auth_service.enrolled(tmp_path)
    account_id = enrolment["account_id"]
    old, old_jwk = request_for(account_id, enrolment["activation_code"])
    await check_activation_code(auth, old)  # the old code is right, so far

    replaced = await auth.transaction(lambda session: replace_devices(auth, session, account_id, actor="kiosk-test"))
    with pytest.raises(ActivationCodeUsed):
        await auth.transaction(lambda session: bind_device(auth, session, old, old_jwk))
    assert await auth.db["devices"].count_documents({"account_id": account_id}) == 0

    new, new_jwk = request_for(account_id, replaced["activation_code"])
    await check_activation_code(auth, new)
    device_id = await auth.transaction(lambda session: bind_device(auth, session, new, new_jwk))
    account = await auth.db["accounts"].find_one({"_id": account_id})
    assert account["state"] == "active" and account["activation"]["status"] == "used"
    assert account["assurance"] == "plus" and account["replacements"] == 1
    assert (await auth.db["devices"].find_one({"_id": device_id}))["account_assurance"] == "plus"

"""Key rotation: `python -m services.formfill.admin rewrap` moves every encrypted record to the new key-encryption key."""

from __future__ import annotations

import pytest

from libs.crypto import FieldCipher, Keyring, new_key_value
from services.formfill import admin
from services.formfill.vault import read_fields

from ...support.auth_stand_in import published
from .conftest import PROFILE


async def test_rewrap_moves_every_record_and_the_old_key_can_go(formfill, service_secrets, monkeypatch):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub, standing=True)).json())["request_id"]
    await formfill.learn(citizen.phone.decided(await formfill.prompt(request_id)))  # a release, a receipt, a request
    old = service_secrets["HARBOUR_FORMFILL_KEK"]
    new = new_key_value("vault-2")
    for name, value in {**service_secrets, "HARBOUR_FORMFILL_KEK": f"{new},{old}",
                        "HARBOUR_MONGO_URI": formfill.ctx.settings.service.mongo_uri,
                        "HARBOUR_FORMFILL_DB": formfill.ctx.settings.service.database,
                        "HARBOUR_SANDBOX": "true"}.items():  # the test's keys and issuer are development ones
        monkeypatch.setenv(name, value)

    # An operator action: refused without a reason (argparse), then audited with who and why.
    with pytest.raises(SystemExit):
        admin.parser().parse_args(["rewrap", "--operator", "wong.k"])
    rewrap = admin.parser().parse_args(["rewrap", "--operator", "wong.k", "--reason", "yearly rotation"])
    report = await admin.run(rewrap)

    assert report == {"rewrapped": 4, "left_on_old_keys": 0, "current_kid": "vault-2"}
    # One transaction per batch with its audit record: every collection's records counted, no personal data.
    audits = [e.data for e in await published(formfill.ctx, "audit.recorded", "formfill-kek")]
    assert {a["action"] for a in audits} == {"keys.rewrap"} and sum(a["rewrapped"] for a in audits) == 4
    assert all(a["actor"] == "operator:wong.k" and a["reason"] == "yearly rotation" and a["current_kid"] == "vault-2" for a in audits)
    only_new = FieldCipher(Keyring.from_env_value(new))
    assert await read_fields(formfill.ctx.db, only_new, citizen.account_id, ["name_en"]) == {"name_en": PROFILE["name_en"]}
    stored = await formfill.ctx.db["requests"].find_one({"_id": request_id})
    assert only_new.decrypt_record(stored["text"], record_id=f"request.{request_id}") == {"purpose": "Open a water account"}
    assert (await admin.run(rewrap))["rewrapped"] == 0  # nothing left to move
    assert (await published(formfill.ctx, "audit.recorded", "formfill-kek"))[-1].data["rewrapped"] == 0  # recorded all the same

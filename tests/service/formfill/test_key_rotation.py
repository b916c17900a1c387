"""Key rotation: `python -m services.formfill.admin rewrap` moves every encrypted record to the new key-encryption key."""

from __future__ import annotations

from libs.crypto import FieldCipher, Keyring, new_key_value
from services.formfill import admin
from services.formfill.vault import read_fields

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

    report = await admin.run()

    assert report == {"rewrapped": 4, "left_on_old_keys": 0, "current_kid": "vault-2"}
    only_new = FieldCipher(Keyring.from_env_value(new))
    assert await read_fields(formfill.ctx.db, only_new, citizen.account_id, ["name_en"]) == {"name_en": PROFILE["name_en"]}
    stored = await formfill.ctx.db["requests"].find_one({"_id": request_id})
    assert only_new.decrypt_record(stored["text"], record_id=f"request.{request_id}") == {"purpose": "Open a water account"}
    assert (await admin.run())["rewrapped"] == 0  # nothing left to move

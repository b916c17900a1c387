"""Each vault field's provenance (vault.py, provenance.py): how formfill learns it from auth's events and what a release
says of it in OpenID Connect for Identity Assurance's verified_claims."""

from __future__ import annotations

import json
from libs.crypto import seal
from libs.events import CloudEvent
from services.formfill.provenance import released_claims
from services.formfill.vault import read_released
from tests.support.auth_stand_in import enrolled, new_account_id, state_changed

from .conftest import PROFILE


def profile_updated(formfill, account_id: str, values: dict, method: str, channel: str | None = None) -> CloudEvent:
    key = json.loads(formfill.secrets["HARBOUR_FORMFILL_SEALING_PUBLIC_JWK"])
    verification = {"method": method, "time": formfill.clock.now().isoformat(), **({"channel": channel} if channel else {})}
    return CloudEvent(source="/auth", type="identity.profile_updated", subject=account_id, data={
        "account_id": account_id, "change_id": f"chg-{account_id[-6:]}", "fields": sorted(values), "verification": verification,
        "sealed_profile": seal(values, key)})


async def provenance(formfill, account_id: str, names: list[str]) -> tuple[dict, dict]:
    return await read_released(formfill.ctx.db, formfill.ctx.cipher, account_id, names)


async def test_a_self_registration_is_self_declared_until_a_kiosk_proofs_the_card_fields_in_person(formfill):
    account_id = new_account_id()
    key = json.loads(formfill.secrets["HARBOUR_FORMFILL_SEALING_PUBLIC_JWK"])
    event = enrolled(account_id, assurance="basic", profile=PROFILE, sealed_to=key)
    await formfill.learn(event)
    enrolled_at = event.time.isoformat()  # when auth enrolled the citizen, not when formfill heard of it
    _, before = await provenance(formfill, account_id, ["name_en", "phone"])
    assert {name: p["method"] for name, p in before.items()} == {"name_en": "self_declared", "phone": "self_declared"}

    formfill.clock.advance(days=3)
    await formfill.learn(CloudEvent(source="/auth", type="identity.assurance_changed", subject=account_id,
                                    data={"account_id": account_id, "from": "basic", "to": "plus", "reason": "kiosk"}))
    values, after = await provenance(formfill, account_id, ["name_en", "date_of_birth", "phone"])
    assert after["name_en"]["method"] == after["date_of_birth"]["method"] == "in_person"
    assert after["phone"] == {"method": "self_declared", "time": enrolled_at}  # contact data is not on the card

    claims = released_claims(values, after)
    [verified] = claims["verified_claims"]
    assert verified["claims"] == {"name_en": PROFILE["name_en"], "date_of_birth": PROFILE["date_of_birth"]}
    assert verified["verification"]["evidence"][0] == {"type": "document", "method": "pipp",
                                                       "time": verified["verification"]["time"],
                                                       "document_details": {"type": "idcard"}}
    assert claims["fields"]["phone"] == PROFILE["phone"] and claims["provenance"]["phone"]["method"] == "self_declared"


async def test_a_change_replaces_the_value_and_its_provenance_only(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    formfill.clock.advance(hours=1)
    await formfill.learn(profile_updated(formfill, citizen.account_id, {"phone": "+85298765432"}, "one_time_code", "sms"))

    values, sources = await provenance(formfill, citizen.account_id, ["phone", "email", "name_en"])
    assert values == {"phone": "+85298765432", "email": PROFILE["email"], "name_en": PROFILE["name_en"]}
    assert sources["phone"] == {"method": "one_time_code", "time": formfill.clock.now().isoformat(), "channel": "sms"}
    assert sources["name_en"]["method"] == "in_person"
    assert sources["email"]["method"] == "self_declared"  # typed at the kiosk, checked by nobody
    stored = await formfill.ctx.db["vault"].find_one({"_id": citizen.account_id})
    assert "+85298765432" not in str(stored)  # re-encrypted with the rest


async def test_a_closed_account_takes_no_change(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    await formfill.learn(state_changed(citizen.account_id, was="active", to="closed"))
    before = (await formfill.ctx.db["vault"].find_one({"_id": citizen.account_id})).get("provenance")
    formfill.clock.advance(hours=1)
    await formfill.learn(profile_updated(formfill, citizen.account_id, {"address": "2 Harbour Road"}, "self_declared"))

    stored = await formfill.ctx.db["vault"].find_one({"_id": citizen.account_id})
    assert "sealed" not in stored and stored.get("provenance") == before  # untouched: nothing to update

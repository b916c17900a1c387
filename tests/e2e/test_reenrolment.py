"""Re-enrolment after an account is revoked (issue 18): a new account, old pairwise subjects never reused.

Through the gateway against the whole stack: an operator revokes the account (`admin set-state ... revoked`), the
same card enrols again at a kiosk, the new phone logs in to the same relying party with a new `sub`, the old phone
stays refused, and the old account's history is kept.
"""

from __future__ import annotations

import json

import pytest

from clients.citizen_app import CitizenApp, Profile
from clients.citizen_app.app import AppError

from ..support.database import mongo
from ..support.oidc import claims_of, login, register
from ..support.operator import admin
from ..support.people import identity, selfie

pytestmark = pytest.mark.e2e


async def test_a_revoked_citizen_enrols_anew_and_gets_new_subjects(platform, kiosk, metadata, tmp_path):
    person = identity()
    kiosk_app = CitizenApp(Profile(gateway_url=platform.gateway))
    first = await kiosk_app.enrol(person, selfie(), kiosk=kiosk)
    old = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "old.json")
    await old.activate(first["account_id"], first["activation_code"], "old phone")
    rp = register(platform, client_name="Harbour Museums", scope="openid")
    tokens, _ = await login(platform, metadata, rp, old)
    old_sub = claims_of(tokens["id_token"])["sub"]

    revoked = admin(platform, "set-state", first["account_id"], "revoked", "--reason", "identity fraud suspected")
    assert revoked.returncode == 0, revoked.stderr

    second = await kiosk_app.enrol(person, selfie(), kiosk=kiosk)
    assert second["account_id"] != first["account_id"] and second["assurance"] == "plus"
    new = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json")
    await new.activate(second["account_id"], second["activation_code"], "new phone")
    tokens, _ = await login(platform, metadata, rp, new)
    new_sub = claims_of(tokens["id_token"])["sub"]
    assert new_sub != old_sub

    # The old phone stays refused; the card's replacement at a kiosk is the new account's now.
    with pytest.raises(AppError) as refused:
        await old.device_token()
    assert refused.value.status == 403 and refused.value.problem["type"].endswith("/account-inactive")
    replaced = await kiosk_app.replace_at_kiosk(person, selfie(), kiosk=kiosk)
    assert replaced["account_id"] == second["account_id"]

    # The history is kept: the old account, its device, its subject and the audit records of both.
    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("auth")]
        kept = await db["accounts"].find_one({"_id": first["account_id"]})
        assert kept["state"] == "revoked" and kept["re_enrolled_as"] == second["account_id"]
        assert await db["devices"].count_documents({"account_id": first["account_id"]}) == 1
        assert await db["subjects"].find_one({"_id": old_sub, "account_id": first["account_id"]}) is not None
        records = [json.loads(doc["value"])["data"] for doc in await db["outbox"].find(
            {"type": "audit.recorded", "key": {"$in": [first["account_id"], second["account_id"]]}}).to_list()]
    actions = {(r["action"], r.get("new_account_id") or r.get("previous_account_id")) for r in records}
    assert ("identity.re_enrolled", second["account_id"]) in actions
    assert ("identity.enrol", first["account_id"]) in actions

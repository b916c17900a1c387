"""An account closed (identity.state_changed to `closed`): formfill crypto-shreds the vault record and releases nothing more."""

from __future__ import annotations

import json

from tests.support.auth_stand_in import enrolled, published, state_changed

from .conftest import PROFILE


async def released_once(formfill):
    """A citizen with one release waiting to be read (a result) and its receipt, and a second request still pending."""
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    first = (await (await formfill.ask(rp, sub=citizen.sub, standing=True)).json())["request_id"]
    await formfill.learn(citizen.phone.decided(await formfill.prompt(first)))
    second = (await (await formfill.ask(rp, sub=citizen.sub)).json())["request_id"]
    return rp, citizen, first, second


async def test_closing_destroys_the_vault_records_key_and_what_waits_to_be_read(formfill):
    rp, citizen, first, _ = await released_once(formfill)
    db = formfill.ctx.db
    sealed = (await db["vault"].find_one({"_id": citizen.account_id}))["sealed"]
    assert formfill.ctx.cipher.decrypt_record(sealed, record_id=citizen.account_id)["name_en"] == PROFILE["name_en"]
    assert await db["results"].count_documents({"_id": first}) == 1

    await formfill.learn(state_changed(citizen.account_id, was="active", to="closed"))

    vault = await db["vault"].find_one({"_id": citizen.account_id})
    assert "sealed" not in vault and vault["state"] == "closed" and vault["shredded_at"] == formfill.clock.now()
    assert await db["results"].count_documents({"_id": first}) == 0
    [receipt] = await db["consents"].find({"account_id": citizen.account_id}).to_list()
    assert receipt["status"] == "revoked" and receipt["revoked_reason"] == "account closed" and "text" not in receipt
    assert receipt["fields"] == ["name_en", "email"]  # which fields went, for audit: names only
    raw = json.dumps([vault, receipt], default=str)
    assert not any(value in raw for value in (PROFILE["name_en"], PROFILE["email"], PROFILE["phone"]))
    assert (await formfill.result(rp, first)).status == 410  # the relying party had not read it: gone
    [audit] = [e for e in await published(formfill.ctx, "audit.recorded", citizen.account_id) if e.data["action"] == "vault.shred"]
    assert audit.data["vault_records"] == 1 and audit.data["results"] == 1 and audit.data["receipts"] == 1

    # The enrolment read again (a replayed topic) does not refill a closed record.
    sealing_key = json.loads(formfill.secrets["HARBOUR_FORMFILL_SEALING_PUBLIC_JWK"])
    await formfill.learn(enrolled(citizen.account_id, profile=PROFILE, sealed_to=sealing_key))
    assert "sealed" not in await db["vault"].find_one({"_id": citizen.account_id})


async def test_an_approval_that_arrives_after_the_closure_releases_nothing(formfill):
    rp, citizen, _, second = await released_once(formfill)
    prompt = await formfill.prompt(second)
    approved = citizen.phone.decided(prompt)  # approved on the phone, then the account closed: the events cross

    await formfill.learn(state_changed(citizen.account_id, was="active", to="closed"))
    await formfill.learn(approved)

    status = await (await formfill.status(rp, second)).json()
    assert status["status"] == "denied" and "released_fields" not in status
    assert await formfill.ctx.db["results"].count_documents({"_id": second}) == 0
    assert await formfill.ctx.db["consents"].count_documents({"request_id": second}) == 0


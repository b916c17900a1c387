"""The citizen's receipts: listed on the phone; a standing consent can be revoked, a one-time release cannot."""

from __future__ import annotations

from tests.support.auth_stand_in import outbox_topics, published

from .conftest import problem


async def released(formfill, *, standing: bool):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub, standing=standing)).json())["request_id"]
    await formfill.learn(citizen.phone.decided(await formfill.prompt(request_id)))
    receipt_id = (await (await formfill.status(rp, request_id)).json())["receipt_id"]
    return rp, citizen, request_id, receipt_id


async def test_receipts_are_listed_newest_first(formfill):
    rp, citizen, request_id, receipt_id = await released(formfill, standing=False)

    answer = await formfill.http.get("/v1/consents", headers=formfill.device_token(citizen))

    assert answer.status == 200
    assert (await answer.json())["consents"] == [{
        "receipt_id": receipt_id, "client_id": rp.client_id, "client_name": "Harbour Water", "request_id": request_id,
        "fields": ["name_en", "email"], "purpose": "Open a water account", "standing": False, "status": "active",
        "granted_at": formfill.clock.now().isoformat()}]
    stored = await formfill.ctx.db["consents"].find_one({"_id": receipt_id})
    assert "purpose" not in stored and "water" not in str(stored)  # the purpose is encrypted on the receipt too


async def test_a_standing_consent_is_revoked_and_the_agency_told(formfill):
    rp, citizen, request_id, receipt_id = await released(formfill, standing=True)
    formfill.clock.advance(60)

    answer = await formfill.http.delete(f"/v1/consents/{receipt_id}", headers=formfill.device_token(citizen))

    assert answer.status == 204
    [receipt] = (await (await formfill.http.get("/v1/consents", headers=formfill.device_token(citizen))).json())["consents"]
    assert (receipt["status"], receipt["revoked_at"]) == ("revoked", formfill.clock.now().isoformat())
    [revoked] = await published(formfill.ctx, "consent.revoked", receipt_id)
    assert revoked.data == {"receipt_id": receipt_id, "request_id": request_id}
    assert await outbox_topics(formfill.ctx, "consent.revoked") == [f"agency.{rp.client_id}.events"]
    audits = [e.data for e in await published(formfill.ctx, "audit.recorded", citizen.account_id)]
    assert {"action": "consent.revoke", "actor": citizen.phone.device_id, "outcome": "success", "receipt_id": receipt_id,
            "client_id": rp.client_id, "request_id": request_id, "fields": ["name_en", "email"]} in audits
    # Revoking again changes nothing and tells nobody twice.
    assert (await formfill.http.delete(f"/v1/consents/{receipt_id}", headers=formfill.device_token(citizen))).status == 204
    assert len(await published(formfill.ctx, "consent.revoked", receipt_id)) == 1


async def test_a_one_time_release_stays_as_the_receipt(formfill):
    _, citizen, _, receipt_id = await released(formfill, standing=False)

    answer = await formfill.http.delete(f"/v1/consents/{receipt_id}", headers=formfill.device_token(citizen))

    assert answer.status == 409
    body = await problem(answer)
    assert body["type"].endswith("/not-standing") and body["detail"] == "a one-time release cannot be revoked; it is kept as your receipt"


async def test_only_the_citizens_own_receipts(formfill):
    rp, citizen, _, receipt_id = await released(formfill, standing=True)
    someone = await formfill.citizen(rp)

    assert (await (await formfill.http.get("/v1/consents", headers=formfill.device_token(someone))).json()) == {"consents": []}
    answer = await formfill.http.delete(f"/v1/consents/{receipt_id}", headers=formfill.device_token(someone))
    assert answer.status == 404 and (await problem(answer))["detail"] == "no such consent"

"""Standing consents told of the citizen's changes (profile_updates.py): who is told, in what form, and who is not."""

from __future__ import annotations

import json

from jwcrypto import jws as jwcrypto_jws

from libs.events import agency_topic
from services.formfill.collections import CONSENT_CALLBACKS, CONSENTS
from tests.support.auth_stand_in import outbox_topics, published

from .test_provenance import profile_updated


async def consent(formfill, rp, citizen, *, fields: list[str], standing: bool = True, status: str = "active") -> str:
    receipt_id = f"rcpt-{rp.client_id}-{len(fields)}-{standing}-{status}"
    await formfill.ctx.db[CONSENTS].insert_one({
        "_id": receipt_id, "account_id": citizen.account_id, "client_id": rp.client_id, "client_name": "Harbour Water",
        "request_id": f"req-{receipt_id}", "fields": fields, "standing": standing, "status": status,
        "granted_at": formfill.clock.now()})
    return receipt_id


def payload(token: str) -> dict:
    parsed = jwcrypto_jws.JWS()
    parsed.deserialize(token)
    return json.loads(parsed.objects["payload"])


async def test_only_active_standing_consents_covering_the_field_are_told(formfill):
    rp = await formfill.relying_party(agency_events=True, callback_urls=["https://rp.example/updates"])
    citizen = await formfill.citizen(rp)
    told = await consent(formfill, rp, citizen, fields=["phone", "name_en"])
    await consent(formfill, rp, citizen, fields=["email"])                          # another field
    await consent(formfill, rp, citizen, fields=["phone"], standing=False)          # a one-time release
    await consent(formfill, rp, citizen, fields=["phone", "email"], status="revoked")

    await formfill.learn(profile_updated(formfill, citizen.account_id, {"phone": "+85298765432"}, "one_time_code", "sms"))

    [event] = await published(formfill.ctx, "consent.fields_updated")
    assert await outbox_topics(formfill.ctx, "consent.fields_updated") == [agency_topic(rp.client_id)]
    assert event.subject == told and event.data["fields"] == ["phone"] and event.data["sub"] == citizen.sub
    # No encryption key: the value goes by callback only, never onto Kafka.
    assert "update" not in event.data and "+85298765432" not in json.dumps(event.data)

    [queued] = await formfill.ctx.db[CONSENT_CALLBACKS].find().to_list()
    assert queued["url"] == "https://rp.example/updates" and queued["media_type"] == "application/jwt"
    assert "+85298765432" not in str(queued)  # the token waits encrypted
    token = formfill.ctx.cipher.decrypt_record(queued["sealed"], record_id=f"update.{queued['_id']}")["token"]
    claims = payload(token)
    assert claims["fields"] == {"phone": "+85298765432"} and claims["receipt_id"] == told and claims["jti"] == queued["_id"]
    assert claims["provenance"]["phone"]["method"] == "one_time_code"
    # A release under the standing consent: on the citizen's record, in the vault update's transaction, names only.
    [released] = [e.data for e in await published(formfill.ctx, "audit.recorded", citizen.account_id)
                  if e.data["action"] == "consent.update_release"]
    assert released == {"action": "consent.update_release", "actor": "formfill", "outcome": "success", "client_id": rp.client_id,
                        "receipt_id": told, "update_id": queued["_id"], "fields": ["phone"], "change_id": released["change_id"],
                        "told_by": ["topic", "callback"], "values_sent": True}


async def test_a_client_without_topic_or_callback_is_told_nothing_but_the_vault_changes(formfill):
    rp = await formfill.relying_party(agency_events=False)
    citizen = await formfill.citizen(rp)
    await consent(formfill, rp, citizen, fields=["address"])

    await formfill.learn(profile_updated(formfill, citizen.account_id, {"address": "2 Harbour Road"}, "self_declared"))

    assert await published(formfill.ctx, "consent.fields_updated") == []
    assert await formfill.ctx.db[CONSENT_CALLBACKS].count_documents({}) == 0
    [audit] = [e for e in await published(formfill.ctx, "audit.recorded") if e.data["action"] == "vault.update"]
    assert audit.data["standing_consents"] == 1 and audit.data["fields"] == ["address"]
    # Told nothing, so nothing released: no consent.update_release on the citizen's record.
    assert [e for e in await published(formfill.ctx, "audit.recorded") if e.data["action"] == "consent.update_release"] == []

"""A relying party's own topic gets consent.granted / consent.revoked only if it subscribed (`agency_events`)."""

from __future__ import annotations

from libs.events import CloudEvent

from tests.support.auth_stand_in import client_registered, outbox_topics

from .conftest import FIELDS


async def release_and_revoke(formfill, rp, citizen) -> str:
    request_id = (await (await formfill.ask(rp, sub=citizen.sub, standing=True)).json())["request_id"]
    await formfill.learn(citizen.phone.decided(await formfill.prompt(request_id)))
    receipt_id = (await (await formfill.status(rp, request_id)).json())["receipt_id"]
    assert (await formfill.http.delete(f"/v1/consents/{receipt_id}", headers=formfill.device_token(citizen))).status == 204
    return receipt_id


async def test_copies_follow_the_clients_setting_as_auth_announces_it(formfill):
    rp = await formfill.relying_party(agency_events=False)
    citizen = await formfill.citizen(rp)
    await release_and_revoke(formfill, rp, citizen)
    assert await outbox_topics(formfill.ctx, "consent.granted") == []
    assert await outbox_topics(formfill.ctx, "consent.revoked") == []

    # An operator turns it on: auth's client.updated carries the whole public metadata again.
    turned_on = client_registered(rp.client_id, sector=rp.sector, formfill_fields=FIELDS, agency_events=True)
    await formfill.learn(CloudEvent(source="/auth", type="client.updated", subject=rp.client_id, data=turned_on.data))
    await release_and_revoke(formfill, rp, citizen)
    topic = f"agency.{rp.client_id}.events"
    assert await outbox_topics(formfill.ctx, "consent.granted") == [topic]
    assert await outbox_topics(formfill.ctx, "consent.revoked") == [topic]


async def test_a_client_announced_before_the_setting_existed_keeps_its_copies(formfill):
    rp = await formfill.relying_party()  # auth's event of old: no agency_events member at all
    assert "agency_events" not in client_registered(rp.client_id, sector=rp.sector).data
    citizen = await formfill.citizen(rp)
    await release_and_revoke(formfill, rp, citizen)
    assert await outbox_topics(formfill.ctx, "consent.revoked") == [f"agency.{rp.client_id}.events"]

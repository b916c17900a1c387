"""A relying party's own topic gets signature.completed / signature.refused only if it subscribed (`agency_events`)."""

from __future__ import annotations

from libs.events import CloudEvent

from tests.support.auth_stand_in import client_registered, outbox_topics, published


async def signed_and_declined(signing, rp, citizen) -> tuple[str, str]:
    ids = []
    for decision in ("approve", "deny"):
        request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]
        await signing.learn(citizen.phone.decided(await signing.prompt(request_id), decision=decision))
        ids.append(request_id)
    return ids[0], ids[1]


async def test_copies_follow_the_clients_setting_as_auth_announces_it(signing):
    rp = await signing.relying_party(agency_events=False)
    citizen = await signing.citizen(rp)
    signed, declined = await signed_and_declined(signing, rp, citizen)
    assert (await (await signing.status(rp, signed)).json())["status"] == "signed"
    assert (await (await signing.status(rp, declined)).json())["status"] == "denied"
    assert await published(signing.ctx, "signature.completed") == []
    assert await published(signing.ctx, "signature.refused") == []

    # An operator turns it on: auth's client.updated carries the whole public metadata again.
    turned_on = client_registered(rp.client_id, sector=rp.sector, agency_events=True)
    await signing.learn(CloudEvent(source="/auth", type="client.updated", subject=rp.client_id, data=turned_on.data))
    signed, declined = await signed_and_declined(signing, rp, citizen)
    topic = f"agency.{rp.client_id}.events"
    assert await outbox_topics(signing.ctx, "signature.completed") == [topic]
    assert await outbox_topics(signing.ctx, "signature.refused") == [topic]
    [refused] = await published(signing.ctx, "signature.refused", declined)
    assert refused.data == {"request_id": declined, "sub": citizen.sub, "reason": "denied"}

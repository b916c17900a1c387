"""A relying party's own topic gets signature.completed / signature.refused only if it subscribed (`agency_events`)."""

from __future__ import annotations

from pymongo import monitoring

from libs.events import CloudEvent
from tests.support.auth_stand_in import client_registered, outbox_topics, published
from tests.support.database import CommandRecorder


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


CLIENT_READS = CommandRecorder()  # registered when the module is collected, before any client of signing's is made
monitoring.register(CLIENT_READS)


async def test_an_outcome_reads_the_client_once_for_its_topic_and_its_callback(signing):
    # The copy on the relying party's topic and its result callback both follow the clients projection as it is when
    # the outcome is written: one read of it by `_id` serves both (it was one each).
    rp = await signing.relying_party(agency_events=True, callback_urls=["https://rp.example/signing-done"])
    citizen = await signing.citizen(rp)
    request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]
    prompt = await signing.prompt(request_id)

    with CLIENT_READS.recording(signing.ctx.db.name) as seen:
        await signing.learn(citizen.phone.decided(prompt))

    assert [name for name, collection, _ in seen if collection == "clients"] == ["find"]
    [completed] = await published(signing.ctx, "signature.completed", request_id)
    assert completed.data["sub"] == citizen.sub
    [callback] = await signing.ctx.db["result_callbacks"].find({"payload.request_id": request_id}).to_list()
    assert (callback["url"], callback["payload"]["event"], callback["payload"]["sub"]) == (
        "https://rp.example/signing-done", "signature.completed", citizen.sub)

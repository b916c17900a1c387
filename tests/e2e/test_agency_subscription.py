"""Agency copies only for agencies that subscribe: the client registration's `agency_events` (docs/events.md).

Two relying parties with every scope, one registered with `agency_events: true`, one without (the default:
false). One citizen logs in to both, releases form fields to both (a standing consent, then revoked), signs a
document for both and gets a notification from both, delivered. Every outcome is committed in the same
transaction as its copy would be, so once the outcome is seen, the services' outboxes say whether a copy was
written: the subscriber's topic holds every kind, the other's outbox and topic nothing — while the login is on
`logins.events` and its status callback still arrives. Then an operator swaps the setting of both
(`PUT /v1/clients/{id}`, the update path): the same journeys again, and the copies go the other way.
"""

from __future__ import annotations

import hashlib

import pytest
import requests
from aiokafka.admin import AIOKafkaAdminClient

from libs.events import CloudEvent, agency_topic
from libs.events.topics import LOGINS

from ..support import formfill, signing
from ..support.broker import all_messages
from ..support.calls import device_auth
from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.notify import Agency, CallbackReceiver
from ..support.oidc import claims_of, login, register
from ..support.operator import operator
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
PUBLISHERS = ("auth", "formfill", "signing", "notify")
EVERY_KIND = {"login.succeeded", "consent.granted", "consent.revoked", "signature.completed", "notification.status_changed"}


async def copies(platform, client_id: str) -> list[dict]:
    """The agency copies the services' outboxes hold for this client: {"type", "sent"}."""
    found = []
    async with mongo(platform.infra.mongo_uri) as client:
        for service in PUBLISHERS:
            async for doc in client[platform.database(service)]["outbox"].find({"topic": agency_topic(client_id)}):
                found.append({"id": doc["_id"], "type": doc["type"], "sent": not doc.get("pending")})
    return found


async def topic_exists(platform, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.infra.kafka_bootstrap)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()


async def journeys(platform, metadata, app, rp: dict, agency: Agency, template: dict, label: str) -> None:
    """A login, a standing form-fill consent then revoked, a signature and a delivered notification, each awaited
    until committed (so the copy, if any, is in its service's outbox)."""
    tokens, _ = await login(platform, metadata, rp, app, scope="openid formfill sign")
    token, sub = tokens["access_token"], claims_of(tokens["id_token"])["sub"]

    asked = await formfill.created(platform, token, [("name_en", True)], standing=True)
    await app.approve((await formfill.prompt_for(app, asked["request_id"]))["approval_id"])
    receipt_id = (await formfill.wait_for_status(platform, token, asked["request_id"], "approved"))["receipt_id"]
    revoked = requests.delete(f"{platform.gateway}/v1/consents/{receipt_id}", timeout=10, headers=device_auth(
        app, await app.device_token(), "DELETE", f"{platform.gateway}/v1/consents/{receipt_id}"))
    assert revoked.status_code == 204, revoked.text

    to_sign = await signing.create(platform, token, json={"document_name": f"{label}.txt",
                                                          "sha256": hashlib.sha256(label.encode()).hexdigest()})
    await app.approve((await signing.prompt_for(app, to_sign["request_id"]))["approval_id"])
    await signing.wait_for(platform, token, to_sign["request_id"], "signed")

    sent = await agency.send({"template_id": template["template_id"], "sub": sub, "personalisation": {"name": "Chan", "licence": label}})
    assert sent.status_code == 201, sent.text
    notification_id = sent.json()["notification_id"]
    await eventually(lambda: agency.status(notification_id)["status"] == "delivered", timeout_s=30)


def swapped(platform, rp: dict, on: bool) -> None:
    """An operator sets the client's `agency_events` (RFC 7592 PUT of its whole metadata with the admin token)."""
    uri = f"{platform.gateway}/v1/clients/{rp['client_id']}"
    current = requests.get(uri, headers=operator(platform), timeout=10)
    assert current.status_code == 200, current.text
    body = {k: v for k, v in current.json().items() if k != "registration_client_uri"} | {"agency_events": on}
    updated = requests.put(uri, json=body, headers=operator(platform), timeout=10)
    assert updated.status_code == 200 and updated.json()["agency_events"] is on, updated.text


async def known_everywhere(platform, client_id: str, on: bool) -> bool:
    """formfill, signing and notify have the setting in their clients projection (learnt from client.updated)."""
    async with mongo(platform.infra.mongo_uri) as client:
        for service in ("formfill", "signing", "notify"):
            doc = await client[platform.database(service)]["clients"].find_one({"_id": client_id})
            if doc is None or doc.get("agency_events") is not on:
                return False
    return True


@pytest.mark.timeout(420)  # eight journeys through the whole stack; slow on a loaded 2-core machine
async def test_only_subscribed_agencies_get_copies_and_the_setting_can_be_swapped(platform, kiosk, metadata, tmp_path):
    scopes = {"scope": "openid formfill sign notify", "formfill_fields": formfill.FIELDS}
    loud = register(platform, client_name="Harbour Housing Authority", agency_events=True, **scopes)
    quiet = register(platform, client_name="Harbour Parks Office", **scopes)
    assert (loud["agency_events"], quiet["agency_events"]) == (True, False)  # the default is off
    app = await enrolled_app(platform, kiosk, tmp_path, "phone")
    agencies = {rp["client_id"]: Agency(platform, metadata, rp["client_name"], client=rp) for rp in (loud, quiet)}
    templates = {client_id: await agency.template() for client_id, agency in agencies.items()}

    async with CallbackReceiver(platform, quiet["client_id"]) as receiver:
        quiet_agency = agencies[quiet["client_id"]]
        assert quiet_agency.call("PUT", "/v1/notifications/callback", {"url": receiver.url}).status_code == 200
        for rp in (loud, quiet):
            await journeys(platform, metadata, app, rp, agencies[rp["client_id"]], templates[rp["client_id"]], "first")

        # Without the setting: no copy in any outbox, no topic; the login did happen, and the callback still comes.
        assert await copies(platform, quiet["client_id"]) == []
        assert not await topic_exists(platform, agency_topic(quiet["client_id"]))
        logins = [CloudEvent.from_json(m.value) for m in await all_messages(platform.infra.kafka_bootstrap, [LOGINS.name])]
        assert any(e.type == "login.succeeded" and e.subject == quiet["client_id"] for e in logins)
        await eventually(lambda: [c for c in receiver.received if c["status"] == "delivered"], timeout_s=30)

    # With it: every kind, each sent to the broker and there.
    async def all_sent(client_id: str):
        found = await copies(platform, client_id)
        return found if {c["type"] for c in found} == EVERY_KIND and all(c["sent"] for c in found) else None

    loud_copies = await eventually(lambda: all_sent(loud["client_id"]), timeout_s=40, interval_s=0.5)
    on_topic = {CloudEvent.from_json(m.value).id for m in await all_messages(platform.infra.kafka_bootstrap, [agency_topic(loud["client_id"])])}
    assert on_topic == {c["id"] for c in loud_copies}

    # An operator swaps the setting; once every service has learnt it, the copies go the other way.
    swapped(platform, loud, False)
    swapped(platform, quiet, True)
    await eventually(lambda: known_everywhere(platform, loud["client_id"], False), timeout_s=30)
    await eventually(lambda: known_everywhere(platform, quiet["client_id"], True), timeout_s=30)
    for rp in (loud, quiet):
        await journeys(platform, metadata, app, rp, agencies[rp["client_id"]], templates[rp["client_id"]], "second")

    assert sorted(c["id"] for c in await copies(platform, loud["client_id"])) == sorted(c["id"] for c in loud_copies)  # no new one
    quiet_copies = await eventually(lambda: all_sent(quiet["client_id"]), timeout_s=40, interval_s=0.5)
    on_topic = {CloudEvent.from_json(m.value).id for m in await all_messages(platform.infra.kafka_bootstrap, [agency_topic(quiet["client_id"])])}
    assert on_topic == {c["id"] for c in quiet_copies}


@pytest.mark.parametrize("value", ["yes", 1, None, {"on": True}])
def test_agency_events_must_be_a_boolean(platform, value):
    response = requests.post(platform.gateway + "/v1/clients", json={"client_name": "Typo Office", "kind": "agency", "scope": "notify",
                                                                     "agency_events": value}, timeout=10)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/validation-failed") and "agency_events" in str(problem["errors"])

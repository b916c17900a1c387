"""An agency sends a template to a citizen it knows by their pairwise sub; the dispatcher delivers it to the inbox."""

from __future__ import annotations

from services.notify.collections import IDEMPOTENCY, NOTIFICATIONS, PUSH_BATCHES
from services.notify.idempotency import fingerprint
from services.notify.notifications import NotificationBody

from tests.support.audit import no_personal_data
from tests.support.auth_stand_in import published
from tests.support.notify import TEMPLATE

from .conftest import VALUES, problem


async def test_a_send_is_accepted_then_delivered_in_the_citizens_language(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency, language="zh-HK")
    template = await notify.template(agency)

    sent = await notify.send(agency, {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES,
                                      "reference": "R-1"})

    assert sent.status == 201
    accepted = await sent.json()
    notification_id = accepted["notification_id"]
    assert accepted == {"notification_id": notification_id, "status": "sending", "template_id": template["template_id"],
                        "template_version": 1, "reference": "R-1"}
    assert sent.headers["Location"] == f"/v1/notifications/{notification_id}"

    notify.clock.advance(2)
    await notify.dispatch()

    status = await notify.status(agency, notification_id)
    assert status["status"] == "delivered" and set(status["timeline"]) == {"created", "sending", "delivered"}
    assert status["timeline"]["delivered"] == notify.clock.now().isoformat()
    assert "due_at" not in status and "reason" not in status
    [message] = [m for m in await notify.inbox(citizen) if m["kind"] == "agency"]
    assert (message["subject"], message["language"], message["from"]) == ("續期牌照 DL-42", "zh-HK", "Transport Department")
    assert "Chan Tai Man" in message["body"] and message["read_at"] is None
    # The push channel got its doorbell, sealed; the personalisation is sealed too.
    push = await notify.ctx.db[PUSH_BATCHES].find_one({"notification_ids": notification_id})
    assert push["state"] == "pending" and push["count"] == 1 and "DL-42" not in str(push)
    assert "DL-42" not in str(await notify.ctx.db[NOTIFICATIONS].find_one({"_id": notification_id}))
    # The citizen's record of who messaged them, in the delivery's transaction: the agency, the template, the channel.
    [audit] = [e for e in await published(notify.ctx, "audit.recorded", agency.client_id) if e.data["action"] == "notification.send"]
    assert audit.data == {"action": "notification.send", "actor": agency.client_id, "outcome": "delivered", "client_id": agency.client_id,
                          "notifications": [{"account_id": citizen.account_id, "notification_id": notification_id,
                                             "template_id": template["template_id"], "template_version": 1,
                                             "channel": "push", "job_id": None}]}
    no_personal_data([audit.data], "DL-42", "Chan Tai Man", "續期牌照")


async def test_the_same_idempotency_key_answers_the_first_send_and_refuses_another_body(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    body = {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES}

    first = await notify.send(agency, body, **{"Idempotency-Key": "k-1"})
    again = await notify.send(agency, body, **{"Idempotency-Key": "k-1"})
    other = await notify.send(agency, {**body, "reference": "R-2"}, **{"Idempotency-Key": "k-1"})
    bad_key = await notify.send(agency, body, **{"Idempotency-Key": "x" * 201})

    # The retry gets the first answer: the same status, body and Location, marked as a replay.
    assert (first.status, again.status) == (201, 201)
    assert await again.json() == await first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert other.status == 422 and (await problem(other))["type"].endswith("/idempotency-key-reused")
    assert bad_key.status == 400 and (await problem(bad_key))["type"].endswith("/bad-idempotency-key")
    assert await notify.ctx.db[NOTIFICATIONS].count_documents({"client_id": agency.client_id}) == 1


async def test_a_key_whose_answer_is_not_stored_yet_is_a_503_to_retry_not_a_500(notify):
    """Seen in the chaos run after the database's SIGKILL: the local database showed a dead transaction's key
    without its answer, and the retry met a KeyError (500)."""
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    body = {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES}
    await notify.ctx.db[IDEMPOTENCY].insert_one({"_id": f"{agency.client_id}:k-half", "created_at": notify.ctx.clock.now(),
                                                 "fingerprint": fingerprint(NotificationBody.model_validate(body))})
    retried = await notify.send(agency, body, **{"Idempotency-Key": "k-half"})
    assert retried.status == 503 and int(retried.headers["Retry-After"]) >= 1
    assert (await problem(retried))["type"].endswith("/idempotent-request-in-progress")
    assert await notify.ctx.db[NOTIFICATIONS].count_documents({"client_id": agency.client_id}) == 0


async def test_a_retry_is_answered_as_accepted_even_after_its_template_changed_and_keys_are_per_agency(notify):
    agency, other_agency = await notify.agency(), await notify.agency(name="Water Supplies Department")
    citizen, other_citizen = await notify.citizen(agency), await notify.citizen(other_agency)
    template = await notify.template(agency)
    body = {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES}
    first = await notify.send(agency, body, **{"Idempotency-Key": "k-1"})
    assert first.status == 201, await first.text()

    # A new version needs a placeholder the request does not carry: a new send is refused, its retry is not.
    version_2 = {**TEMPLATE, "placeholders": [*TEMPLATE["placeholders"], "office"],
                 "content": {"en": {"subject": "Renew {{ licence }}", "body": "Dear {{ name }}, come to {{ office }}."}}}
    changed = await notify.http.put(f"/v1/templates/{template['template_id']}", json=version_2, headers=notify.agency_token(agency))
    assert changed.status == 201, await changed.text()
    fresh = await notify.send(agency, body, **{"Idempotency-Key": "k-2"})
    assert fresh.status == 400 and (await problem(fresh))["type"].endswith("/missing-placeholder")
    again = await notify.send(agency, body, **{"Idempotency-Key": "k-1"})
    assert again.status == 201 and await again.json() == await first.json()

    # Another agency's "k-1" is its own key.
    other_template = await notify.template(other_agency)
    theirs = await notify.send(other_agency, {"template_id": other_template["template_id"], "sub": other_citizen.sub,
                                              "personalisation": VALUES}, **{"Idempotency-Key": "k-1"})
    assert theirs.status == 201 and "Idempotent-Replayed" not in theirs.headers
    assert (await theirs.json())["notification_id"] != (await first.json())["notification_id"]
    assert await notify.ctx.db[NOTIFICATIONS].count_documents({"client_id": agency.client_id}) == 1


async def test_a_send_lacking_a_placeholder_or_with_a_long_value_is_refused_and_stores_nothing(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)

    lacking = await notify.send(agency, {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": {"name": "Chan"}})
    long = await notify.send(agency, {"template_id": template["template_id"], "sub": citizen.sub,
                                      "personalisation": {**VALUES, "name": "x" * 1001}})

    assert lacking.status == 400
    answer = await problem(lacking)
    assert (answer["type"].rsplit("/", 1)[1], answer["placeholders"], answer["detail"]) == (
        "missing-placeholder", ["licence"], "personalisation lacks: licence")
    assert long.status == 400 and (await problem(long))["detail"] == "a personalisation value is at most 1000 characters"
    assert await notify.ctx.db[NOTIFICATIONS].count_documents({"client_id": agency.client_id}) == 0


async def test_an_unknown_sub_is_422_and_a_sub_of_another_sector_is_as_unknown(notify):
    agency, other = await notify.agency(), await notify.agency(name="Water Supplies Department")
    elsewhere = await notify.citizen(other)
    template = await notify.template(agency)

    for sub in ("nobody", elsewhere.sub):
        refused = await notify.send(agency, {"template_id": template["template_id"], "sub": sub, "personalisation": VALUES})
        assert refused.status == 422 and (await problem(refused))["type"].endswith("/unknown-recipient")


async def test_an_agency_notify_has_not_heard_of_yet_is_asked_to_retry(notify):
    stranger = type("Agency", (), {"client_id": "agency-not-yet-known"})()

    refused = await notify.send(stranger, {"template_id": "tpl-x", "sub": "s", "personalisation": {}})

    assert refused.status == 409 and refused.headers["Retry-After"] == "1"
    assert (await problem(refused))["type"].endswith("/unknown-client")


async def test_another_agencys_notification_is_not_found(notify):
    agency, other = await notify.agency(), await notify.agency(name="Water Supplies Department")
    citizen = await notify.citizen(agency)
    status = await notify.delivered(agency, citizen)

    answer = await notify.http.get(f"/v1/notifications/{status['notification_id']}", headers=notify.agency_token(other))

    assert answer.status == 404 and (await problem(answer))["detail"] == "no such notification for this agency"


async def test_a_suspended_recipient_fails_with_its_reason(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency, state="suspended")

    status = await notify.delivered(agency, citizen)

    assert (status["status"], status["reason"]) == ("failed", "recipient-inactive")
    assert await notify.inbox(citizen) == []

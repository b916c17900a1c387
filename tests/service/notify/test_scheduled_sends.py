"""A send with `send_at` waits, `created`, until its time; the dispatcher releases it then. Time is moved, not waited for."""

from __future__ import annotations

from datetime import timedelta

from .conftest import VALUES, problem


async def test_a_scheduled_send_waits_for_its_time_then_is_delivered(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    send_at = notify.clock.now() + timedelta(hours=1)

    sent = await notify.send(agency, {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES,
                                      "send_at": send_at.isoformat()})
    assert sent.status == 201 and (await sent.json())["status"] == "created"
    notification_id = (await sent.json())["notification_id"]
    waiting = await notify.status(agency, notification_id)
    assert (waiting["status"], waiting["due_at"], set(waiting["timeline"])) == ("created", send_at.isoformat(), {"created"})

    notify.clock.advance(3599)
    await notify.timed_work()
    assert (await notify.status(agency, notification_id))["status"] == "created"

    notify.clock.advance(1)
    await notify.timed_work()
    delivered = await notify.status(agency, notification_id)
    assert delivered["status"] == "delivered" and delivered["timeline"]["delivered"] == send_at.isoformat()
    assert notification_id in {m["notification_id"] for m in await notify.inbox(citizen)}


async def test_a_send_in_the_past_goes_now_and_more_than_seven_days_ahead_is_refused(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    body = {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES}

    past = await notify.send(agency, {**body, "send_at": (notify.clock.now() - timedelta(hours=1)).isoformat()})
    far = await notify.send(agency, {**body, "send_at": (notify.clock.now() + timedelta(days=7, seconds=1)).isoformat()})

    assert past.status == 201 and (await past.json())["status"] == "sending"
    assert far.status == 400 and (await problem(far))["type"].endswith("/schedule-too-far")

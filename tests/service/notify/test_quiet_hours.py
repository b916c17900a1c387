"""Quiet hours (Hong Kong time) hold a normal message until they end; a high-priority one goes through."""

from __future__ import annotations

from datetime import UTC, datetime

from .conftest import VALUES

# 23:30 in Hong Kong (UTC+8); the citizen's quiet hours run 22:00 → 07:00, which is 23:00 UTC.
LATE_EVENING = datetime(2030, 1, 1, 15, 30, tzinfo=UTC)
QUIET_ENDS = datetime(2030, 1, 1, 23, 0, tzinfo=UTC)


async def test_a_normal_message_waits_for_the_end_of_quiet_hours_and_an_urgent_one_does_not(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    await notify.preferences(citizen, {"quiet_hours": {"start": "22:00", "end": "07:00"}})
    notify.clock.set(LATE_EVENING)
    body = {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES}

    normal = (await (await notify.send(agency, body)).json())["notification_id"]
    urgent = (await (await notify.send(agency, {**body, "priority": "high", "reference": "typhoon-8"})).json())["notification_id"]
    await notify.dispatch()

    held = await notify.status(agency, normal)
    assert (held["status"], held["due_at"]) == ("created", QUIET_ENDS.isoformat())
    assert "sending" in held["timeline"]  # it was due, met the quiet hours, and went back to waiting
    assert (await notify.status(agency, urgent))["status"] == "delivered"
    assert {m["notification_id"] for m in await notify.inbox(citizen)} & {normal, urgent} == {urgent}

    notify.clock.set(QUIET_ENDS)
    await notify.timed_work()
    assert (await notify.status(agency, normal))["status"] == "delivered"
    assert normal in {m["notification_id"] for m in await notify.inbox(citizen)}


async def test_outside_quiet_hours_a_message_goes_at_once(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    await notify.preferences(citizen, {"quiet_hours": {"start": "22:00", "end": "07:00"}})
    notify.clock.set(datetime(2030, 1, 2, 4, 0, tzinfo=UTC))  # noon in Hong Kong

    assert (await notify.delivered(agency, citizen))["status"] == "delivered"

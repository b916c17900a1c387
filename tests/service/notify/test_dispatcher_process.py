"""The dispatcher as its own app, in process: it takes the API's dispatch events from the broker and delivers them.

Every other test here hands those events to the dispatcher's handler itself;
this one goes through the real topics and consumer groups, and the
dispatcher's own timed work releases a scheduled send when the shared clock
reaches it.
"""

from __future__ import annotations

from datetime import timedelta

from tests.support.polling import eventually

from .conftest import VALUES


async def test_the_dispatcher_delivers_what_the_api_accepted_and_releases_scheduled_sends(notify, start_service, clock):
    database = notify.ctx.settings.service.database
    await start_service("notify-dispatcher", clock=clock, NOTIFY_DB=database, AUTH_URL=notify.auth.url, ISSUER=notify.auth.issuer)
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    body = {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES}

    now = await notify.send(agency, body)
    later = await notify.send(agency, {**body, "send_at": (clock.now() + timedelta(minutes=5)).isoformat()})
    now_id, later_id = (await now.json())["notification_id"], (await later.json())["notification_id"]

    await eventually(lambda: _status_is(notify, agency, now_id, "delivered"), timeout_s=30)
    assert (await notify.status(agency, later_id))["status"] == "created"
    clock.advance(300)
    await eventually(lambda: _status_is(notify, agency, later_id, "delivered"), timeout_s=30)
    assert {now_id, later_id} <= {m["notification_id"] for m in await notify.inbox(citizen)}


async def _status_is(notify, agency, notification_id: str, status: str) -> bool:
    return (await notify.status(agency, notification_id))["status"] == status

"""What a killed dispatcher leaves behind is picked up: a chunk left `sending`, a job left `accepted`, a job's lost chunk.

The lost events are simply never handed to the dispatcher here; the sweeps
find their work once it has been stale for `stale_after_s` (30 s), which the
clock passes at once.
"""

from __future__ import annotations

import asyncio

from services.notify import callbacks, dispatcher, sweeps
from services.notify.channels import adapter_for
from services.notify.dispatcher import ConsumerActivity
from tests.support.auth_stand_in import published
from tests.support.polling import eventually

from .conftest import VALUES


async def test_a_notification_whose_dispatch_event_was_lost_is_dispatched_again(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    await notify.dispatch()  # the citizen's own security alert, before anything is lost
    sent = await notify.send(agency, {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES})
    notification_id = (await sent.json())["notification_id"]
    [lost] = [e for e in await published(notify.ctx, "notification.dispatch") if e.id not in notify.handled]
    notify.forget(lost)

    notify.clock.advance(29)
    await notify.timed_work()
    assert (await notify.status(agency, notification_id))["status"] == "sending"

    notify.clock.advance(2)
    await notify.timed_work()
    assert (await notify.status(agency, notification_id))["status"] == "delivered"
    assert [m["notification_id"] for m in await notify.inbox(citizen)].count(notification_id) == 1


async def test_a_job_whose_expansion_was_lost_is_expanded_again(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    accepted = await notify.send_batch(agency, {"template_id": template["template_id"],
                                                "recipients": [{"sub": citizen.sub, "personalisation": VALUES}] * 2})
    job_id = (await accepted.json())["job_id"]
    [lost] = await published(notify.ctx, "notification.job", job_id)
    notify.forget(lost)

    notify.clock.advance(31)
    await notify.timed_work()

    progress = await notify.progress(agency, job_id)
    assert (progress["status"], progress["counts"]["delivered"], progress["finished"]) == ("expanded", 2, True)


async def test_a_jobs_chunk_whose_dispatch_event_was_lost_is_dispatched_again(notify):
    """A job's notifications are written when delivered: a chunk event lost with a crashed attempt leaves recipients
    with no notification at all, which the sweeper finds from the job and dispatches again."""
    agency = await notify.agency()
    citizens = [await notify.citizen(agency) for _ in range(2)]
    template = await notify.template(agency)
    await notify.dispatch()
    accepted = await notify.send_batch(agency, {"template_id": template["template_id"],
                                                "recipients": [{"sub": c.sub, "personalisation": VALUES} for c in citizens]})
    job_id = (await accepted.json())["job_id"]
    [lost] = await notify.expand(job_id)
    notify.forget(lost)
    await notify.timed_work()
    assert (await notify.progress(agency, job_id))["processed"] == 0  # not stale yet: nothing sent again

    notify.clock.advance(31)
    await notify.timed_work()

    progress = await notify.progress(agency, job_id)
    assert (progress["counts"]["delivered"], progress["finished"]) == (2, True)
    for citizen in citizens:
        assert len([m for m in await notify.inbox(citizen) if m["kind"] == "agency"]) == 1
    # The next sweep finds every notification written: the job leaves the sweeper's list.
    notify.clock.advance(31)
    await notify.timed_work()
    assert "unwritten_since" not in await notify.ctx.db["jobs"].find_one({"_id": job_id})


async def test_a_delivered_chunk_dispatched_again_changes_nothing(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    status = await notify.delivered(agency, citizen)

    notify.handled.clear()  # every dispatch event comes again, as after a crash before the consumer committed
    assert await notify.dispatch() > 0

    assert (await notify.status(agency, status["notification_id"]))["timeline"] == status["timeline"]
    assert [m["notification_id"] for m in await notify.inbox(citizen)].count(status["notification_id"]) == 1


async def test_an_idle_dispatcher_looks_for_stale_work_at_a_sixth_of_stale_after_not_on_every_pass(notify, monkeypatch):
    """The sweeps ran on every pass of an idle dispatcher (every second): three queries a second for work that is
    stale only after stale_after_s (30 s here). Now at most every min(5 s, stale_after_s / 6); the due notifications
    and the retry queues are still looked at on every pass."""
    calls = {"release_due": 0, "redispatch_stale": 0, "reexpand_stale": 0, "record_backlog": 0}

    def counted(module, name):
        original = getattr(module, name)

        async def counting(*args, **kwargs):
            calls[name] += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)

    for name in ("release_due", "redispatch_stale", "reexpand_stale"):
        counted(sweeps, name)
    counted(callbacks, "record_backlog")
    idle = ConsumerActivity(clock=iter(range(1000, 10**6, 1000)).__next__)  # quiet for a long while, and more each time
    adapter = adapter_for("local", notify.ctx.db, notify.ctx.cipher, notify.clock)
    running = asyncio.create_task(dispatcher._timed_work(notify.ctx, adapter, idle, {}))
    try:
        assert notify.ctx.settings.stale_after_s / 6 >= 2.5
        await eventually(lambda: calls["release_due"] >= 3, timeout_s=20)  # three passes: 0, 0.5 and 1.5 s in
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert calls["redispatch_stale"] == calls["reexpand_stale"] == calls["record_backlog"] == 1, calls

"""A late decision is judged by when the citizen made it (auth's `decided_at`), not when formfill processes it.

The decisions travel through the broker to formfill's own consumer. The clock starts ten minutes behind the wall
clock, so a decision the citizen's phone signed "then" is as stale by the wall clock as one held up in the broker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.clock import FrozenClock
from tests.support.auth_stand_in import published


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=600))


async def asked(formfill):
    rp = await formfill.relying_party()
    citizen = await formfill.citizen(rp)
    request_id = (await (await formfill.ask(rp, sub=citizen.sub)).json())["request_id"]
    return rp, citizen, request_id, await formfill.prompt(request_id)


async def test_an_approval_made_in_time_releases_although_its_event_arrives_after_the_expiry(formfill):
    rp, citizen, request_id, prompt = await asked(formfill)
    formfill.clock.advance(290)
    approval = citizen.phone.decided(prompt)  # auth received it 10 s before the prompt expired
    formfill.clock.advance(310)  # ...and its event reaches formfill five minutes after the expiry
    assert (await (await formfill.status(rp, request_id)).json())["status"] == "expired"

    await formfill.learn_through_broker(approval)

    status = await (await formfill.status(rp, request_id)).json()
    assert status["status"] == "approved" and status["released_fields"] == ["name_en", "email"]
    [granted] = await published(formfill.ctx, "consent.granted")
    assert granted.data["request_id"] == request_id
    assert (await formfill.result(rp, request_id)).status == 200
    stored = await formfill.ctx.db["requests"].find_one({"_id": request_id})
    assert stored["decided_at"] == prompt.expires_at - timedelta(seconds=10)  # when the citizen decided, not now


async def test_a_denial_made_in_time_closes_the_request_although_its_event_arrives_late(formfill):
    rp, citizen, request_id, prompt = await asked(formfill)
    formfill.clock.advance(290)
    denial = citizen.phone.decided(prompt, "deny")
    formfill.clock.advance(310)

    await formfill.learn_through_broker(denial)

    status = await (await formfill.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("denied", "access_denied")


async def test_a_decision_made_once_the_prompt_had_expired_is_refused(formfill):
    formfill.clock.advance(290)  # asked 5 min 10 s ago by the wall clock: the prompt expired 10 s ago
    rp, citizen, request_id, prompt = await asked(formfill)
    formfill.clock.advance(300)
    late = citizen.phone.decided(prompt)  # recorded at the very instant of expiry; its JWS is fresh by the wall clock
    formfill.clock.advance(5)

    await formfill.learn_through_broker(late)

    assert (await (await formfill.status(rp, request_id)).json())["status"] == "expired"
    assert await published(formfill.ctx, "consent.granted") == []
    assert await formfill.ctx.db["results"].count_documents({}) == 0


async def test_a_decision_time_after_its_own_event_is_refused(formfill):
    formfill.clock.advance(590)  # now by the wall clock: the decision's JWS is fresh
    rp, citizen, request_id, prompt = await asked(formfill)
    formfill.clock.advance(5)
    decided = citizen.phone.decided(prompt)
    forged = decided.model_copy(update={"time": formfill.clock.now() - timedelta(seconds=1)})

    await formfill.learn_through_broker(forged)

    assert (await (await formfill.status(rp, request_id)).json())["status"] == "pending"

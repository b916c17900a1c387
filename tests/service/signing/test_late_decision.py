"""A late decision is judged by when the citizen made it (auth's `decided_at`), not when signing processes it.

The decisions travel through the broker to signing's own consumer. The clock starts ten minutes behind the wall
clock, so a decision the citizen's phone signed "then" is as stale by the wall clock as one held up in the broker;
by the time it is processed the clock has caught up with the wall clock (signatures and timestamps are made now).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.clock import FrozenClock
from tests.support.auth_stand_in import published


@pytest.fixture
def now_clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=600))


async def asked(signing, *, pdf: bool = False):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    answer = await (signing.ask_pdf(rp, sub=citizen.sub) if pdf else signing.ask(rp, sub=citizen.sub))
    request_id = (await answer.json())["request_id"]
    return rp, citizen, request_id, await signing.prompt(request_id)


async def test_an_approval_made_in_time_is_signed_although_its_event_arrives_after_the_expiry(signing):
    rp, citizen, request_id, prompt = await asked(signing)
    signing.clock.advance(290)
    approval = citizen.phone.decided(prompt)  # auth received it 10 s before the prompt expired
    signing.clock.advance(310)  # ...and its event reaches signing five minutes after the expiry
    assert (await (await signing.status(rp, request_id)).json())["status"] == "expired"

    await signing.learn_through_broker(approval)

    status = await (await signing.status(rp, request_id)).json()
    assert status["status"] == "signed" and status["signed_at"] == signing.clock.now().isoformat()
    assert (await signing.result(rp, request_id)).status == 200
    [completed] = await published(signing.ctx, "signature.completed")
    assert completed.data["request_id"] == request_id
    stored = await signing.ctx.db["requests"].find_one({"_id": request_id})
    assert stored["decided_at"] == prompt.expires_at - timedelta(seconds=10)  # when the citizen decided


async def test_a_pdf_waits_past_the_expiry_for_a_late_approval(signing):
    rp, citizen, request_id, prompt = await asked(signing, pdf=True)
    document = await signing.ctx.db["documents"].find_one({"_id": request_id})
    assert document["expires_at"] == prompt.expires_at + timedelta(days=3)  # the TTL index deletes it then, not at the expiry
    signing.clock.advance(290)
    approval = citizen.phone.decided(prompt)
    signing.clock.advance(310)

    await signing.learn_through_broker(approval)

    assert (await (await signing.status(rp, request_id)).json())["status"] == "signed"
    result = await signing.result(rp, request_id)
    assert result.status == 200 and result.content_type == "application/pdf"
    assert await signing.ctx.db["documents"].count_documents({"_id": request_id}) == 0


async def test_a_decision_made_once_the_prompt_had_expired_is_refused(signing):
    signing.clock.advance(290)  # asked 5 min 10 s ago by the wall clock: the prompt expired 10 s ago
    rp, citizen, request_id, prompt = await asked(signing)
    signing.clock.advance(300)
    late = citizen.phone.decided(prompt)  # recorded at the very instant of expiry; its JWS is fresh by the wall clock
    signing.clock.advance(5)

    await signing.learn_through_broker(late)

    assert (await (await signing.status(rp, request_id)).json())["status"] == "expired"
    assert await published(signing.ctx, "signature.completed") == []
    assert await signing.ctx.db["results"].count_documents({}) == 0

"""A relying party waiting for its citizen's answer with `?wait=`: held until the decision commits, not polling.

libs/held_requests.py. Each test would fail if the request were answered at once (still pending, or
409 not-ready), or held to the end of its wait while the answer had come.
"""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from libs.service.overload import IN_FLIGHT
from tests.support.polling import eventually

from .conftest import problem

# Far longer than any test waits for an answer: a request held to the end of its wait fails the test's own timeout.
LONG_WAIT = "20"


async def _held(signing, rp, path: str, wait: str = LONG_WAIT) -> asyncio.Task:
    """GET `path` with ?wait= in the background, once the service holds it."""
    held_before = signing.ctx.answers.held_count
    task = asyncio.create_task(signing.http.get(path, params={"wait": wait}, headers=signing.rp_token(rp)))
    feed = signing.ctx.answers.feed
    await eventually(lambda: signing.ctx.answers.held_count > held_before or task.done(), timeout_s=10)
    await eventually(lambda: task.done() or feed.mode == "change-stream", timeout_s=10)
    assert not task.done(), "answered at once instead of being held"
    return task


async def _asked(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]
    return rp, citizen, request_id


async def test_a_held_result_is_answered_when_the_decision_commits(signing):
    rp, citizen, request_id = await _asked(signing)
    result = await _held(signing, rp, f"/v1/signing/requests/{request_id}/result")
    status = await _held(signing, rp, f"/v1/signing/requests/{request_id}")
    # Held requests are outside the in-flight limit (32 by default): they idle, and would otherwise starve the rest.
    assert signing.http.app[IN_FLIGHT].count == 0

    await signing.learn(citizen.phone.decided(await signing.prompt(request_id)))

    signed = await asyncio.wait_for(result, 10)
    assert signed.status == 200 and signed.content_type == "application/pkcs7-signature"
    assert await signed.read() == await (await signing.result(rp, request_id)).read()
    shown = await asyncio.wait_for(status, 10)
    assert (await shown.json())["status"] == "signed"
    assert signing.ctx.answers.held_count == 0


async def test_an_answer_written_by_another_process_wakes_a_held_request(signing):
    # Another replica's consumer took the decision: nothing in this process says so but the requests' change stream.
    rp, _, request_id = await _asked(signing)
    status = await _held(signing, rp, f"/v1/signing/requests/{request_id}")
    await signing.ctx.db["requests"].update_one({"_id": request_id}, {"$set": {"status": "denied"}})
    body = await (await asyncio.wait_for(status, 10)).json()
    assert (body["status"], body["error"]) == ("denied", "access_denied")
    assert signing.ctx.answers.feed.mode == "change-stream"


async def test_a_wait_ends_with_the_request_as_it_is(signing):
    rp, _, request_id = await _asked(signing)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = await signing.http.get(f"/v1/signing/requests/{request_id}/result", params={"wait": "1"},
                                     headers=signing.rp_token(rp))
    assert waiting.status == 409 and (await problem(waiting))["type"].endswith("/not-ready")
    assert loop.time() - started >= 1  # held for its wait, not answered at once

    # A request that expires while held is answered as expired (never held past its own time).
    status = await _held(signing, rp, f"/v1/signing/requests/{request_id}", wait="2")
    signing.clock.advance(301)  # SIGNING_REQUEST_TTL_S
    assert (await (await asyncio.wait_for(status, 10)).json())["status"] == "expired"


async def test_beyond_its_limit_a_process_answers_at_once(signing):
    rp, _, request_id = await _asked(signing)
    signing.ctx.answers.max_held = 1
    not_held = REGISTRY.get_sample_value("harbour_requests_not_held_total", {"service": "signing"}) or 0
    first = await _held(signing, rp, f"/v1/signing/requests/{request_id}", wait="3")
    assert REGISTRY.get_sample_value("harbour_requests_held", {"service": "signing"}) == 1
    at_once = await asyncio.wait_for(signing.http.get(f"/v1/signing/requests/{request_id}/result",
                                                      params={"wait": LONG_WAIT}, headers=signing.rp_token(rp)), 10)
    assert at_once.status == 409 and at_once.headers["Retry-After"] == "1"  # its caller polls, as without wait
    assert REGISTRY.get_sample_value("harbour_requests_not_held_total", {"service": "signing"}) == not_held + 1
    assert (await (await first).json())["status"] == "pending"


async def test_one_relying_party_holds_at_most_its_share(signing):
    # One client's waits (or its callers that hung up: a held request does not notice until its wait ends) cannot take
    # every place: past its share its requests are answered at once, while another client's are still held.
    rp, _, request_id = await _asked(signing)
    other, _, others_request = await _asked(signing)
    signing.ctx.answers.max_held_per_client = 1
    first = await _held(signing, rp, f"/v1/signing/requests/{request_id}", wait="3")
    at_once = await asyncio.wait_for(signing.http.get(f"/v1/signing/requests/{request_id}", params={"wait": LONG_WAIT},
                                                      headers=signing.rp_token(rp)), 10)
    assert (await at_once.json())["status"] == "pending"
    theirs = await _held(signing, other, f"/v1/signing/requests/{others_request}", wait="3")
    assert signing.ctx.answers.held_count == 2
    for answer in await asyncio.gather(first, theirs):
        assert (await answer.json())["status"] == "pending"


async def test_a_bad_wait_is_refused_and_another_clients_request_not_found(signing):
    rp, _, request_id = await _asked(signing)
    for wait in ("21", "-1", "soon", "1.5"):
        for path in (f"/v1/signing/requests/{request_id}", f"/v1/signing/requests/{request_id}/result"):
            refused = await signing.http.get(path, params={"wait": wait}, headers=signing.rp_token(rp))
            assert refused.status == 422, (wait, path)
            assert (await problem(refused))["type"].endswith("/validation-failed")
    other = await signing.relying_party()
    stranger = await signing.http.get(f"/v1/signing/requests/{request_id}", params={"wait": "5"},
                                      headers=signing.rp_token(other))
    assert stranger.status == 404 and signing.ctx.answers.held_count == 0


async def test_a_stopping_service_answers_its_held_requests_at_once(signing):
    # A rolling restart: aiohttp's shutdown signal releases them (answered as they are), rather than the stop waiting
    # out each relying party's 20 s — and nothing is held after it.
    rp, _, request_id = await _asked(signing)
    status = await _held(signing, rp, f"/v1/signing/requests/{request_id}")
    await signing.http.app.shutdown()
    assert (await (await asyncio.wait_for(status, 10)).json())["status"] == "pending"
    assert signing.ctx.answers.held_count == 0
    again = await asyncio.wait_for(signing.http.get(f"/v1/signing/requests/{request_id}/result", params={"wait": LONG_WAIT},
                                                    headers=signing.rp_token(rp)), 10)
    assert again.status == 409

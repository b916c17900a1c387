"""The new phone's question after its pairing, held until the pairing moves (`?wait=`), not polled.

devices/pairing.py `view`, libs/held_requests.py. auth in process on the real broker and database; the citizen app
library plays both phones. Each test would fail if the question were answered at once (the status the phone had
already), or held to the end of its wait while the pairing had moved.
"""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client import REGISTRY

from libs.service.overload import IN_FLIGHT
from tests.support.polling import eventually

# Far longer than any test waits for an answer: a question held to the end of its wait fails the test's own timeout.
LONG_WAIT = 20


async def _held(auth_service, asking) -> asyncio.Task:
    """`asking` (a coroutine) in the background, once auth holds it."""
    held = auth_service.context.pairings_held
    held_before = held.held_count
    task = asyncio.ensure_future(asking)
    await eventually(lambda: held.held_count > held_before or task.done(), timeout_s=10)
    await eventually(lambda: task.done() or held.feed.mode == "change-stream", timeout_s=10)
    assert not task.done(), "answered at once instead of being held"
    return task


async def _get(auth_service, pairing_id: str, wait: str) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{auth_service.url}/v1/devices/pairings/{pairing_id}", params={"wait": wait})
        await response.read()
        return response


async def test_the_new_phones_question_is_answered_at_each_move_of_its_pairing(auth_service, tmp_path):
    old = await auth_service.citizen(tmp_path, "old phone")
    new = auth_service.citizen_app(tmp_path, "new")
    started = await new.start_pairing("tablet")

    # Waiting: held until the old phone enters the code, then answered with the matching code to show.
    asked = await _held(auth_service, new.pairing_status(wait_s=LONG_WAIT))
    # Held questions idle outside the in-flight limit: a few hundred new phones would otherwise starve auth.
    assert auth_service.client.app[IN_FLIGHT].count == 0
    claimed = await old.claim_pairing(started["code"])
    shown = await asyncio.wait_for(asked, 10)
    assert shown["status"] == "claimed" and shown["matching_code"] == claimed["matching_code"]

    # Claimed: held again until the old phone approves, then answered bound, with the device and account.
    asked = await _held(auth_service, new.pairing_status(wait_s=LONG_WAIT))
    prompt = await old.show(claimed["approval_id"])
    await old.approve(prompt["approval_id"])
    bound = await asyncio.wait_for(asked, 10)
    assert bound["status"] == "bound" and bound["account_id"] == old.profile.account_id and bound["device_id"]
    assert auth_service.context.pairings_held.held_count == 0

    # A pairing that has ended is answered at once, whatever the wait.
    assert (await asyncio.wait_for(new.pairing_status(wait_s=LONG_WAIT), 5))["status"] == "bound"


async def test_a_denial_answers_the_held_question(auth_service, tmp_path):
    old = await auth_service.citizen(tmp_path, "old phone")
    new = auth_service.citizen_app(tmp_path, "new")
    started = await new.start_pairing("tablet")
    claimed = await old.claim_pairing(started["code"])
    asked = await _held(auth_service, new.pairing_status(wait_s=LONG_WAIT))
    await old.deny(claimed["approval_id"])
    assert (await asyncio.wait_for(asked, 10))["status"] == "denied"


async def test_a_pairing_moved_by_another_process_wakes_the_held_question(auth_service, tmp_path):
    # Another replica took the claim: nothing in this process says so but the pairings' change stream.
    new = auth_service.citizen_app(tmp_path, "new")
    started = await new.start_pairing("tablet")
    asked = await _held(auth_service, new.pairing_status(wait_s=LONG_WAIT))
    await auth_service.context.db["device_pairings"].update_one(
        {"_id": started["pairing_id"]}, {"$set": {"status": "claimed", "matching_code": "0042"}})
    shown = await asyncio.wait_for(asked, 10)
    assert (shown["status"], shown["matching_code"]) == ("claimed", "0042")
    assert auth_service.context.pairings_held.feed.mode == "change-stream"


async def test_a_wait_ends_with_the_pairing_as_it_is(auth_service, clock, tmp_path):
    new = auth_service.citizen_app(tmp_path, "new")
    await new.start_pairing("tablet")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await new.pairing_status(wait_s=1))["status"] == "waiting"
    assert loop.time() - started >= 1  # held for its wait, not answered at once

    # A pairing that expires while held is answered as expired (never held past its own time).
    asked = await _held(auth_service, new.pairing_status(wait_s=2))
    clock.advance(auth_service.context.settings.pairing_ttl_s + 1)
    assert (await asyncio.wait_for(asked, 10))["status"] == "expired"


async def test_one_pairing_holds_at_most_its_share_and_bad_waits_are_refused(auth_service, tmp_path):
    held = auth_service.context.pairings_held
    first, second = auth_service.citizen_app(tmp_path, "first"), auth_service.citizen_app(tmp_path, "second")
    mine, theirs = await first.start_pairing("a"), await second.start_pairing("b")
    held.max_held_per_client = 1
    not_held = REGISTRY.get_sample_value("harbour_requests_not_held_total", {"service": "auth"}) or 0
    asked = await _held(auth_service, first.pairing_status(wait_s=3))
    # Past this pairing's share: answered at once, as without wait; another pairing's question is still held.
    at_once = await asyncio.wait_for(_get(auth_service, mine["pairing_id"], str(LONG_WAIT)), 5)
    assert at_once.status == 200
    assert REGISTRY.get_sample_value("harbour_requests_not_held_total", {"service": "auth"}) == not_held + 1
    other = await _held(auth_service, second.pairing_status(wait_s=3))
    assert held.held_count == 2
    assert [s["status"] for s in await asyncio.gather(asked, other)] == ["waiting", "waiting"]

    for wait in ("21", "-1", "soon", "1.5"):
        refused = await _get(auth_service, theirs["pairing_id"], wait)
        assert refused.status == 422 and refused.content_type == "application/problem+json", wait
    unknown = await asyncio.wait_for(_get(auth_service, "pair-unknown", str(LONG_WAIT)), 5)
    assert unknown.status == 404 and held.held_count == 0

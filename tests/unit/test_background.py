"""libs/background.repeat_passes: the loop of every background worker (outbox relay, ledger, dispatcher, senders)."""

from __future__ import annotations

import asyncio

import pytest

from libs.background import repeat_passes

from ..support.logs import service_logs


class Stop(BaseException):
    """Ends the loop from inside the fake sleep (the loop lets only CancelledError and BaseException out)."""


async def run(results: list, **options) -> list[float]:
    """Run passes returning (or raising) `results` in turn; the waits the loop asked for, until they run out."""
    waits: list[float] = []
    passes = iter(results)

    async def one_pass() -> int:
        try:
            outcome = next(passes)
        except StopIteration:
            raise Stop from None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    with pytest.raises(Stop):
        await repeat_passes(one_pass, interval_s=0.5, what="test pass", sleep=sleep, **options)
    return waits


async def test_a_full_batch_runs_again_at_once_and_a_partial_one_waits():
    assert await run([10, 10, 3, 0, 10], full_batch=10) == [0.5, 0.5]


async def test_by_default_any_work_runs_again_at_once():
    assert await run([1, 0, 2, 0]) == [0.5, 0.5]


async def test_failures_are_retried_with_the_wait_doubling_to_its_cap_then_back_to_the_interval():
    boom = RuntimeError("database hiccup")
    assert await run([boom, boom, boom, boom, boom, 0], max_backoff_s=5.0) == [1.0, 2.0, 4.0, 5.0, 5.0, 0.5]


async def test_without_a_cap_a_failure_waits_the_interval():
    assert await run([RuntimeError("x"), RuntimeError("y"), 0]) == [0.5, 0.5, 0.5]


async def test_cancellation_ends_the_loop():
    started = asyncio.Event()

    async def one_pass() -> int:
        started.set()
        return 0

    task = asyncio.create_task(repeat_passes(one_pass, interval_s=60, what="test pass"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failure_is_logged_without_its_text_when_asked(capsys):
    secret = "HKID A123456(7)"
    with service_logs("background-test"):
        await run([ValueError(secret), 0], traceback=False)
    out = capsys.readouterr()
    assert "test pass failed; retrying" in out.out + out.err and "ValueError" in out.out + out.err
    assert secret not in out.out + out.err


async def test_an_idle_loop_waits_twice_as_long_after_each_empty_pass_up_to_its_cap():
    assert await run([0, 0, 0, 0, 0], idle_max_s=2.0) == [0.5, 1.0, 2.0, 2.0, 2.0]


async def test_work_found_brings_the_wait_back_to_the_interval():
    assert await run([0, 0, 0, 3, 0, 0], idle_max_s=4.0) == [0.5, 1.0, 2.0, 0.5, 1.0]
    assert await run([0, 0, 0, 3, 0], full_batch=10, idle_max_s=4.0) == [0.5, 1.0, 2.0, 0.5, 0.5]
    assert await run([0, 0, 0, 10, 0], full_batch=10, idle_max_s=4.0) == [0.5, 1.0, 2.0, 0.5]


async def test_without_an_idle_cap_every_empty_pass_waits_the_interval():
    assert await run([0, 0, 0, 0], idle_max_s=None) == [0.5, 0.5, 0.5, 0.5]


async def test_a_cap_below_the_interval_leaves_the_interval():
    assert await run([0, 0, 0], idle_max_s=0.1) == [0.5, 0.5, 0.5]


async def test_a_failure_does_not_count_as_idle():
    boom = RuntimeError("database hiccup")
    assert await run([0, 0, boom, 0], idle_max_s=8.0, max_backoff_s=5.0) == [0.5, 1.0, 1.0, 2.0]


async def test_a_wake_up_runs_an_idle_loop_at_once_and_restarts_its_ramp():
    """A real loop (real waits): after four empty passes it waits 0.4 s, then 0.8 and 1.6 - three more passes take
    2.8 s on their own. Woken, it passes at once, then after 0.05 and 0.1 s: three passes well within 1.5 s."""
    passes = 0
    idle = asyncio.Event()

    async def one_pass() -> int:
        nonlocal passes
        passes += 1
        if passes == 4:
            idle.set()
        return 0

    wake = asyncio.Event()
    task = asyncio.create_task(repeat_passes(one_pass, interval_s=0.05, what="test pass", idle_max_s=3600, wake=wake))
    try:
        await idle.wait()
        before = passes
        wake.set()
        async with asyncio.timeout(1.5):
            while passes < before + 3:
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_wake_up_by_name_reaches_the_loops_started_with_that_name_only_while_they_run():
    from libs.background import _NAMED, wake_up

    wake_up("test pass loop")  # no loop: nothing happens
    passes: list[int] = []
    started = asyncio.Event()

    async def one_pass() -> int:
        passes.append(1)
        started.set()
        return 0

    task = asyncio.create_task(repeat_passes(one_pass, interval_s=3600, what="test pass", wake_name="test pass loop"))
    try:
        await started.wait()
        wake_up("another loop")
        await asyncio.sleep(0.05)
        assert passes == [1]  # another name wakes nothing here
        wake_up("test pass loop")
        async with asyncio.timeout(5):
            while len(passes) < 2:
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not _NAMED["test pass loop"]  # a stopped loop is forgotten


async def test_event_or_timeout_says_whether_the_event_was_set():
    from libs.background import event_or_timeout

    event = asyncio.Event()
    assert await event_or_timeout(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await event_or_timeout(event, 30) is True


async def test_a_loop_woken_and_cancelled_at_the_same_moment_stops():
    """The wake-up and the cancellation arrive together: the loop must stop. asyncio.wait_for on Python 3.11 returns
    the finished wait instead (gh-86296) - the loop ran on and the service's shutdown waited for it for ever."""
    passes = 0
    waiting = asyncio.Event()

    async def one_pass() -> int:
        nonlocal passes
        passes += 1
        waiting.set()
        return 0

    wake = asyncio.Event()
    task = asyncio.create_task(repeat_passes(one_pass, interval_s=60, what="test pass", wake=wake))
    await waiting.wait()
    for _ in range(3):
        await asyncio.sleep(0)  # the loop is now in its wait
    wake.set()
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert passes == 1


async def test_item_or_timeout_gives_the_next_item_or_none_and_drops_nothing():
    from libs.background import item_or_timeout

    queue: asyncio.Queue[str] = asyncio.Queue()
    assert await item_or_timeout(queue, 0.01) is None
    asyncio.get_running_loop().call_later(0.01, queue.put_nowait, "prompt-1")
    assert await item_or_timeout(queue, 30) == "prompt-1"
    queue.put_nowait("prompt-2")
    assert await item_or_timeout(queue, 0) == "prompt-2"  # already there: taken even with no time to wait
    assert queue.empty()


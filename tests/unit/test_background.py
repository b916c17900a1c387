"""libs/background.repeat_passes: the loop of every background worker (outbox relay, ledger, dispatcher, senders)."""

from __future__ import annotations

import asyncio

import pytest

from libs.background import repeat_passes


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
    await run([ValueError(secret), 0], traceback=False)
    out = capsys.readouterr()
    assert "test pass failed; retrying" in out.out + out.err and "ValueError" in out.out + out.err
    assert secret not in out.out + out.err

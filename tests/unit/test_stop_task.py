"""libs/background.py `stop_task`: a task that lost its cancellation is cancelled again until it ends.

A cancellation lost below our code (a library that swallows it at the wrong moment) left a loop running, and the
service's stop waited for it for ever: signing's audit-ledger consumer held a stop past 60 s in tests/service.
"""

from __future__ import annotations

import asyncio

import pytest

from libs.background import stop_task


async def _loses_its_first_cancellation(stopped: list[str]) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        pass  # what a library did with it
    try:
        while True:
            await asyncio.sleep(3600)
    finally:
        stopped.append("ended")


async def test_a_task_that_lost_its_cancellation_is_stopped_by_cancelling_it_again():
    stopped: list[str] = []
    task = asyncio.create_task(_loses_its_first_cancellation(stopped))
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, again_every_s=0.05), 5)
    assert task.cancelled() and stopped == ["ended"]


async def test_cancelling_once_and_waiting_as_before_would_hang():
    task = asyncio.create_task(_loses_its_first_cancellation([]))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(asyncio.gather(task, return_exceptions=True)), 0.3)
    await stop_task(task, again_every_s=0.05)


async def test_a_task_that_ends_at_once_is_waited_for_once():
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task), 1)
    assert task.cancelled()

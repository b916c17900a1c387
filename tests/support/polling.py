"""Awaiting a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time


async def eventually(predicate, *, timeout_s: float = 30.0, interval_s: float = 0.1):
    """Await until `predicate()` (sync or async) returns something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)

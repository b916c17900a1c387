"""The loop every service's background work runs in: one pass, then another at once or after a wait.

Used by the outbox relay, the audit ledger's appender, notify's dispatcher and the callback senders. A pass
returns how much it handled; one that handled a full batch runs again at once (more is waiting), otherwise the
loop waits. A failing pass (a database or broker hiccup) is logged and retried: it never ends the loop, only
cancellation does.

An idle loop asks less and less often: after each pass that found nothing the wait doubles, from `interval_s` up
to `idle_max_s` (2 s by default), and any work found brings it back to `interval_s`. Polling every 0.5 s for
ever was most of an idle stack's load — about 60 database queries a second, 42 % of the core the stack was
pinned to, taken from the requests under load (docs/operations.md). Work this process gives a loop does not wait
for that: whoever queues it wakes the loop (`wake`, or `wake_up(name)` for a loop started with `wake_name`), and
a woken loop runs a pass at once and starts again from `interval_s`. A wake-up from inside the transaction that
queues the work may come before the commit: that pass finds nothing, the next comes `interval_s` later, as
before. Work queued by another process (another replica) waits at most `idle_max_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger()

# The longest an idle loop waits between two passes (work queued by another process waits at most this long).
IDLE_MAX_S = 2.0

# The wake-up events of the loops started with a `wake_name`, in this process, by name.
_NAMED: dict[str, set[asyncio.Event]] = {}


def wake_up(name: str) -> None:
    """Wake every loop of this process started with `wake_name=name` (none running: nothing happens)."""
    for event in _NAMED.get(name, ()):
        event.set()


async def repeat_passes(one_pass: Callable[[], Awaitable[int]], *, interval_s: float, what: str,
                        full_batch: int = 1, max_backoff_s: float | None = None,
                        idle_max_s: float | None = IDLE_MAX_S, wake: asyncio.Event | None = None,
                        wake_name: str | None = None,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                        traceback: bool = True, log_fields: dict[str, object] | None = None) -> None:
    """Run `one_pass` until cancelled.

    `full_batch`: a pass that handled at least this many runs again without waiting. `max_backoff_s`: after a
    failure the wait doubles, up to this (None: it stays `interval_s`). `idle_max_s`: after a pass that handled
    nothing the wait doubles, up to this (None: it stays `interval_s`). `wake`: an event that cuts the wait short
    (set by whoever queued work); `wake_name`: the same through `wake_up(name)`. `sleep`: how to wait when there is
    no wake-up (tests record the waits). `traceback`: False where an exception's text could carry personal data
    (the senders'); then only its type is logged. `log_fields`: added to that log line (e.g. the service)."""
    fields = log_fields or {}
    if wake is None and wake_name is not None:
        wake = asyncio.Event()
    if wake_name is not None:
        _NAMED.setdefault(wake_name, set()).add(wake)
    failing_wait = idle_wait = interval_s
    try:
        while True:
            failed = False
            try:
                handled = await one_pass()
                failing_wait = interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if traceback:
                    log.exception(f"{what} failed; retrying", **fields)
                else:
                    log.warning(f"{what} failed; retrying", error=type(exc).__name__, **fields)
                handled, failed = 0, True
                if max_backoff_s is not None:
                    failing_wait = min(failing_wait * 2, max_backoff_s)
            if handled >= full_batch:
                idle_wait = interval_s
                continue
            if failed:
                wait = failing_wait
            elif handled:  # some work, not a full batch: the interval, as ever
                wait = idle_wait = interval_s
            else:
                wait = idle_wait
                if idle_max_s is not None:
                    idle_wait = min(idle_wait * 2, max(idle_max_s, interval_s))
            if await _wait(wait, wake, sleep):
                idle_wait = interval_s
    finally:
        if wake_name is not None:
            _NAMED[wake_name].discard(wake)


async def _wait(seconds: float, wake: asyncio.Event | None, sleep: Callable[[float], Awaitable[None]]) -> bool:
    """Wait `seconds`, or until `wake` is set; whether it was."""
    if wake is None:
        await sleep(seconds)
        return False
    woken = await event_or_timeout(wake, seconds)
    wake.clear()
    return woken


async def event_or_timeout(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` has passed; whether it is set.

    Not `asyncio.wait_for`: on Python 3.11 it can lose the waiting task's cancellation when the timeout ends the wait
    at the same moment (CPython gh-86296, fixed in 3.12), and a loop that lost it runs on: the service's shutdown then
    waits for it for ever (a signing service in tests/service did not stop within 60 s with its loops still running).
    `asyncio.wait` leaves a cancellation to the task that awaits it."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiter,), timeout=timeout_s)
    finally:
        waiter.cancel()
    return event.is_set()


async def stop_task(task: asyncio.Task, *, again_every_s: float = 1.0) -> None:
    """Cancel `task` and wait until it has ended, cancelling it again every `again_every_s` while it runs on.

    A cancellation can be lost below our code — a library that turns it into another error, or swallows it, at the
    wrong moment (on Python 3.11 asyncio's own timeouts can, see `event_or_timeout`) — and a loop that lost it runs
    on: the service's stop then waits for it for ever (signing's audit-ledger consumer held a stop past 60 s in
    tests/service). Cancelled again, it ends at its next await."""
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=again_every_s)


async def item_or_timeout(queue: asyncio.Queue[T], timeout_s: float) -> T | None:
    """The queue's next item, or None once `timeout_s` has passed without one — `event_or_timeout`'s way, for the
    same reason (a cancellation lost by `asyncio.wait_for` on Python 3.11). An item the getter already took when
    the timeout came is returned, never dropped."""
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait((getter,), timeout=timeout_s)
    finally:
        if not getter.done():
            getter.cancel()
    return getter.result() if getter.done() and not getter.cancelled() else None

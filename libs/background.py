"""The loop every service's background work runs in: one pass, then another at once or after a wait.

Used by the outbox relay, the audit ledger's appender, notify's dispatcher and the callback senders. A pass
returns how much it handled; one that handled a full batch runs again at once (more is waiting), otherwise the
loop waits. A failing pass (a database or broker hiccup) is logged and retried: it never ends the loop, only
cancellation does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger()


async def repeat_passes(one_pass: Callable[[], Awaitable[int]], *, interval_s: float, what: str,
                        full_batch: int = 1, max_backoff_s: float | None = None,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                        traceback: bool = True, log_fields: dict[str, object] | None = None) -> None:
    """Run `one_pass` until cancelled.

    `full_batch`: a pass that handled at least this many runs again without waiting. `max_backoff_s`: after a
    failure the wait doubles, up to this (None: it stays `interval_s`). `sleep`: how to wait (a relay's wait can
    be cut short by a wake-up). `traceback`: False where an exception's text could carry personal data (the
    senders'); then only its type is logged. `log_fields`: added to that log line (e.g. the service)."""
    fields = log_fields or {}
    wait = interval_s
    while True:
        try:
            handled = await one_pass()
            wait = interval_s
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if traceback:
                log.exception(f"{what} failed; retrying", **fields)
            else:
                log.warning(f"{what} failed; retrying", error=type(exc).__name__, **fields)
            handled = 0
            if max_backoff_s is not None:
                wait = min(wait * 2, max_backoff_s)
        if handled >= full_batch:
            continue
        await sleep(wait)

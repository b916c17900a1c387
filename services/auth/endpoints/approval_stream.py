"""GET /v1/approvals/stream: the account's new prompts as server-sent events, instead of polling for them.

One `prompt` event per new pending prompt of the device's account (its id,
kind and expiry; the content is fetched by id), the prompts already waiting
first; a comment line as heartbeat. The per-device limit (429) and the end on
the token's expiry or revocation are libs/service/streams.py's, as for
notify's inbox stream; the prompts come from the process's PromptFeed
(approvals/stream.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from libs.background import item_or_timeout, stop_task
from libs.revocation import REVOCATIONS, install_revocations
from libs.service.endpoints import Endpoints
from libs.service.openapi import DEVICE_AUTH_ERRORS
from libs.service.overload import mark_long_lived
from libs.service.streams import SSE_HEADERS, StreamSlots, TooManyStreams, end_reason

from ..approvals.stream import PromptFeed
from ..callers import AUTH, DEVICE_REFUSALS, current_device

FEED = web.AppKey("auth_prompt_feed", PromptFeed)
SLOTS = web.AppKey("auth_approval_stream_slots", StreamSlots)
# Set at shutdown so open streams end promptly instead of holding the graceful stop for its whole timeout.
CLOSING = web.AppKey("auth_approval_streams_closing", asyncio.Event)
CHECK_EVERY_S = 0.5  # how soon a revoked or expired token's stream ends

endpoints = Endpoints(tags=("approvals",), security=("deviceToken",))


@dataclass(frozen=True)
class StreamingDevice:
    device_id: str
    account_id: str
    claims: dict[str, Any]  # the token's, checked against the revocation list while the stream is open


async def streaming_device(request: web.Request) -> StreamingDevice:
    """The device behind the token, checked as for every device call, and the token's claims."""
    # Refuses a bad token, one without its DPoP proof, a revoked device, an inactive account. The proof is checked
    # once, at connect; the stream then re-checks the kept claims against the revocation list and their expiry.
    kept: list[dict[str, Any]] = []
    device = await current_device(request, on_claims=kept.append)
    return StreamingDevice(device.device_id, device.account_id, kept[0])


# Like notify's inbox stream, an endless event stream has no response a generic client (or schemathesis) could check,
# only hang on: documented in docs/api.md, left out of the OpenAPI document.
@endpoints.get(
    "/v1/approvals/stream", summary="The account's new prompts as server-sent events", caller=streaming_device,
    answers={200: "text/event-stream", **DEVICE_AUTH_ERRORS},
    refusals=(*DEVICE_REFUSALS, TooManyStreams), documented=False,
)
async def stream_prompts(request: web.Request, caller: StreamingDevice) -> web.StreamResponse:
    """`event: prompt`, `data: {"approval_id", "kind", "expires_at"}` per new pending prompt; `: heartbeat` comments;
    `: closed: <reason>` before it ends on the token's expiry or revocation."""
    slots = request.app[SLOTS]
    if not slots.take(caller.device_id):
        raise TooManyStreams(f"this device already has {slots.per_device} open approval streams; close one first")
    try:
        return await _stream(request, caller)
    finally:
        slots.give_back(caller.device_id)


async def _stream(request: web.Request, caller: StreamingDevice) -> web.StreamResponse:
    auth, feed = request.app[AUTH], request.app[FEED]
    revocations = request.app[REVOCATIONS].list
    loop = asyncio.get_running_loop()
    # Subscribed before the prompts already waiting are read: one queued in between comes one way or both.
    queue = feed.subscribe(caller.account_id)
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        await response.write(b": connected\n\nretry: 2000\n\n")
        sent: set[str] = set()
        backlog = await feed.pending(caller.account_id)
        last_write = loop.time()
        while not request.app[CLOSING].is_set():
            if request.transport is None or request.transport.is_closing():
                break  # the client went away: free its place now
            ended = end_reason(caller.claims, revocations)
            if ended:
                await response.write(f": closed: {ended}\n\n".encode())
                break
            if backlog:
                item = backlog.pop(0)
            else:
                item = await item_or_timeout(queue, CHECK_EVERY_S)
            if item is not None and item["approval_id"] not in sent:
                sent.add(item["approval_id"])
                await response.write(f"id: {item['approval_id']}\nevent: prompt\ndata: {json.dumps(item)}\n\n".encode())
                last_write = loop.time()
            if loop.time() - last_write >= auth.settings.sse_heartbeat_s:
                await response.write(b": heartbeat\n\n")
                last_write = loop.time()
            if len(sent) > 10_000:
                sent.clear()  # a stream open for its whole token's life never gets near this
    except ConnectionResetError:
        pass  # the client went away
    finally:
        feed.unsubscribe(caller.account_id, queue)
    return response


def install_approval_stream(app: web.Application) -> None:
    """The feed (one per process), the per-device limit, the revocation list, closing at shutdown."""
    install_revocations(app)  # an open stream ends when its device, token or account is revoked
    app[CLOSING] = asyncio.Event()

    async def feed(app: web.Application):
        auth = app[AUTH]
        app[FEED] = auth.prompt_feed or PromptFeed(auth.db, auth.clock)
        app[SLOTS] = StreamSlots(auth.settings.sse_max_streams_per_device)
        task = asyncio.create_task(app[FEED].run(), name="auth-prompt-feed")
        yield
        await stop_task(task)

    async def close_streams(app: web.Application) -> None:
        app[CLOSING].set()

    app.cleanup_ctx.append(feed)
    app.on_shutdown.append(close_streams)
    # An open stream waits most of its life: outside the in-flight limit and the request's database deadline.
    mark_long_lived(app, "/v1/approvals/stream")

"""notify's HTTP handlers: authenticate the caller, parse, call the domain, serialise."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from aiohttp import web

from libs.revocation import REVOCATIONS
from libs.service import parse_body

from . import callbacks, inbox, jobs, notifications, preferences, streams, templates
from .callbacks import CallbackBody
from .callers import Citizen, agency, device
from .context import Notify
from .errors import BadQuery, BadVersion, NotFound, TooManyStreams
from .jobs import BatchBody
from .metrics import SSE_CONNECTIONS
from .notifications import NotificationBody
from .preferences import PreferencesBody
from .templates import TemplateBody

NOTIFY = web.AppKey("notify", Notify)
# Set at shutdown so open streams end promptly instead of holding the graceful stop for its whole timeout.
CLOSING = web.AppKey("notify_closing", asyncio.Event)
STREAM_SLOTS = web.AppKey("notify_stream_slots", streams.StreamSlots)
routes = web.RouteTableDef()


def _only(request: web.Request, *allowed: str) -> None:
    """Unknown query parameters are refused, not ignored: a typo must not silently change the answer."""
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise BadQuery(f"unknown query parameters: {', '.join(unknown)[:200]}")


def _version(request: web.Request) -> int | None:
    _only(request, "version")
    raw = request.query.get("version")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1_000_000:
        raise BadVersion("version is a positive integer")
    return int(raw)


# -- agencies: templates -------------------------------------------------------

@routes.post("/v1/templates")
async def create_template(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    body = await parse_body(request, TemplateBody)
    return web.json_response(await templates.create(notify.db, caller.client_id, body, notify.clock.now()), status=201)


@routes.get("/v1/templates")
async def list_templates(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    return web.json_response({"templates": await templates.list_latest(notify.db, caller.client_id)})


@routes.get("/v1/templates/{template_id}")
async def show_template(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    return web.json_response(await templates.show(notify.db, caller.client_id, request.match_info["template_id"], _version(request)))


@routes.put("/v1/templates/{template_id}")
async def new_template_version(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    body = await parse_body(request, TemplateBody)
    return web.json_response(await templates.new_version(notify.db, caller.client_id, request.match_info["template_id"], body, notify.clock.now()), status=201)


# -- agencies: notifications, jobs, callbacks -----------------------------------

@routes.post("/v1/notifications")
async def send_notification(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    body = await parse_body(request, NotificationBody)
    answer, created = await notifications.send(notify, caller, body, request.headers.get("Idempotency-Key"))
    return web.json_response(answer, status=201 if created else 200, headers={"Location": f"/v1/notifications/{answer['notification_id']}"})


@routes.post("/v1/notifications/batch")
async def send_batch(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    body = await parse_body(request, BatchBody)
    answer, created = await jobs.send_batch(notify, caller, body, request.headers.get("Idempotency-Key"))
    return web.json_response(answer, status=201 if created else 200, headers={"Location": f"/v1/notifications/batch/{answer['job_id']}"})


@routes.get("/v1/notifications/batch/{job_id}")
async def job_progress(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    return web.json_response(await jobs.job_progress(notify, caller, request.match_info["job_id"]), headers={"Cache-Control": "no-store"})


@routes.get("/v1/notifications/jwks")
async def jwks(request: web.Request) -> web.Response:
    return web.json_response(await request.app[NOTIFY].keys.jwks(), headers={"Cache-Control": "max-age=60"})


@routes.put("/v1/notifications/callback")
async def register_callback(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    body = await parse_body(request, CallbackBody)
    # The URL's name is resolved here too: one that resolves to a refused address, or not at all, is 422.
    return web.json_response(await callbacks.register(notify.db, caller.client_id, body, notify.clock.now()))


@routes.get("/v1/notifications/callback")
async def show_callback(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    registered = await callbacks.show(notify.db, caller.client_id)
    if registered is None:
        raise NotFound("no callback is registered")
    return web.json_response(registered)


@routes.delete("/v1/notifications/callback")
async def remove_callback(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    await callbacks.remove(notify.db, caller.client_id)
    return web.Response(status=204)


@routes.get("/v1/notifications/{notification_id}")
async def show_notification(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    caller = await agency(request, notify.jwks, notify.settings.issuer)
    return web.json_response(await notifications.status(notify, caller, request.match_info["notification_id"]), headers={"Cache-Control": "no-store"})


# -- citizens: inbox and preferences -------------------------------------------

@routes.get("/v1/inbox")
async def list_inbox(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    citizen = await device(request, notify.jwks, notify.settings.issuer)
    _only(request, "unread")
    unread = request.query.get("unread", "false")
    if unread not in ("true", "false"):
        raise BadQuery("unread is true or false")
    return web.json_response({"messages": await inbox.list_items(notify, citizen, unread_only=unread == "true")}, headers={"Cache-Control": "no-store"})


@routes.get("/v1/inbox/stream")
async def stream_inbox(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one `message` event per new inbox item, a comment line as heartbeat."""
    notify = request.app[NOTIFY]
    citizen = await device(request, notify.jwks, notify.settings.issuer)
    slots = request.app[STREAM_SLOTS]
    if not slots.take(citizen.device_id):
        raise TooManyStreams(f"this device already has {slots.per_device} open inbox streams; close one first")
    try:
        return await _stream(request, notify, citizen)
    finally:
        slots.give_back(citizen.device_id)


async def _stream(request: web.Request, notify: Notify, citizen: Citizen) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    SSE_CONNECTIONS.inc()
    revocations = request.app[REVOCATIONS].list
    # Look back a little: an item delivered while the client was connecting is not missed; ids deduplicate.
    since = notify.clock.now() - timedelta(seconds=2)
    sent: set[str] = set()
    last_write = asyncio.get_running_loop().time()
    try:
        await response.write(b": connected\n\nretry: 2000\n\n")
        while not request.app[CLOSING].is_set():
            # Checked every poll: a revoked device or token, or its expiry, ends the stream within sse_poll_s.
            if request.transport is None or request.transport.is_closing():
                break  # the client went away: free its place now, not at the next failed write
            ended = streams.end_reason(citizen.claims or {}, revocations, notify.clock.now().timestamp())
            if ended:
                await response.write(f": closed: {ended}\n\n".encode())
                break
            for item in await inbox.delivered_since(notify, citizen.account_id, since):
                if item["id"] in sent:
                    continue
                sent.add(item["id"])
                payload = json.dumps(item, ensure_ascii=False)
                await response.write(f"id: {item['id']}\nevent: message\ndata: {payload}\n\n".encode())
                last_write = asyncio.get_running_loop().time()
            if len(sent) > 1000:
                sent.clear()
                since = notify.clock.now() - timedelta(seconds=2)
            now = asyncio.get_running_loop().time()
            if now - last_write >= notify.settings.sse_heartbeat_s:
                await response.write(b": heartbeat\n\n")
                last_write = now
            await asyncio.sleep(notify.settings.sse_poll_s)
    except ConnectionResetError:
        pass  # the client went away
    finally:
        SSE_CONNECTIONS.dec()
    return response


@routes.post("/v1/inbox/{item_id}/read")
async def read_item(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    citizen = await device(request, notify.jwks, notify.settings.issuer)
    return web.json_response(await inbox.mark_read(notify, citizen, request.match_info["item_id"]))


@routes.get("/v1/preferences")
async def show_preferences(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    citizen = await device(request, notify.jwks, notify.settings.issuer)
    return web.json_response(await preferences.show(notify.db, citizen.account_id), headers={"Cache-Control": "no-store"})


@routes.put("/v1/preferences")
async def replace_preferences(request: web.Request) -> web.Response:
    notify = request.app[NOTIFY]
    citizen = await device(request, notify.jwks, notify.settings.issuer)
    body = await parse_body(request, PreferencesBody)
    return web.json_response(await preferences.replace(notify.db, citizen.account_id, body, notify.clock.now()))

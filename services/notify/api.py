"""notify's HTTP endpoints: each declared once with its caller, body, answers and refusals (libs/service/endpoints.py),
which also make its OpenAPI operation (merged by the gateway).

Handlers call the domain and answer its view model; refusals are raised below
and rendered by the service kit, so no handler catches one.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel

from libs.background import event_or_timeout
from libs.callers import ACCESS_TOKEN_REFUSALS, DEVICE_TOKEN_REFUSALS, caller_of
from libs.revocation import REVOCATIONS
from libs.service.endpoints import Endpoints
from libs.service import streams
from libs.service.openapi import JSON
from libs.store.change_feed import ChangeFeed

from libs.data_export import ExportPart

from . import callbacks, export, idempotency, inbox, jobs, notifications, preferences, templates
from .callbacks import JWKS, Callback, CallbackBody
from .callers import Agency, Citizen, agency, device
from .context import Notify
from .errors import (
    BadIdempotencyKey,
    BadQuery,
    BadVersion,
    BatchTooLarge,
    CallbackURLRefused,
    IdempotencyKeyReused,
    MissingPlaceholder,
    NotAgencyToken,
    NotFound,
    PersonalisationTooLong,
    ScheduleTooFar,
    TemplateRender,
    TemplateSyntax,
    TemplateTooCostly,
    TooManyStreams,
    UndeclaredPlaceholder,
    UnknownClient,
    UnknownRecipient,
    VersionConflict,
)
from .inbox import Inbox, InboxItem
from .jobs import BatchBody, JobAccepted, JobProgress
from .metrics import SSE_CONNECTIONS
from .notifications import Notification, NotificationAccepted, NotificationBody
from .preferences import Preferences, PreferencesBody
from .templates import Template, TemplateBody, TemplateList

NOTIFY = web.AppKey("notify", Notify)
# Set at shutdown so open streams end promptly instead of holding the graceful stop for its whole timeout.
CLOSING = web.AppKey("notify_closing", asyncio.Event)
STREAM_SLOTS = web.AppKey("notify_stream_slots", streams.StreamSlots)
INBOX_FEED = web.AppKey("notify_inbox_feed", ChangeFeed)

NO_STORE = {"Cache-Control": "no-store"}
AGENCY = {401: "no, invalid or expired access token (WWW-Authenticate: Bearer)",
          403: "the token lacks the notify scope, or is not the agency's own client-credentials token"}
AGENCY_REFUSALS = (*ACCESS_TOKEN_REFUSALS, NotAgencyToken)
DEVICE = {401: "no, invalid or expired device token, or the device is revoked (WWW-Authenticate: Bearer)"}
DEVICE_REFUSALS = DEVICE_TOKEN_REFUSALS
SEND_REFUSALS = (*AGENCY_REFUSALS, BadIdempotencyKey, IdempotencyKeyReused, MissingPlaceholder, PersonalisationTooLong,
                 ScheduleTooFar, NotFound, UnknownClient)
IDEMPOTENCY = ("An `Idempotency-Key` header makes the request safe to retry, after a lost answer or at the same time: the same "
               "key with the same body creates nothing more and answers what the first request was answered (201, the same "
               "body and Location) with `Idempotent-Replayed: true`; with a different body, 422 idempotency-key-reused. "
               "Keys are per agency and kept 24 hours.")

agencies = Endpoints(tags=("notifications",), security=("bearer",))
citizens = Endpoints(tags=("inbox",), security=("deviceToken",))


calling_agency = caller_of(NOTIFY, agency)
calling_device = caller_of(NOTIFY, device)


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


def _created(view: BaseModel, created: bool, location: str) -> web.Response:
    """201 with what was created; a retry under the same Idempotency-Key gets the same answer, marked as a replay."""
    headers = {"Location": location} | ({} if created else {idempotency.REPLAYED_HEADER: "true"})
    return web.Response(status=201, body=view.model_dump_json(), content_type=JSON, headers=headers)


# -- agencies: templates -------------------------------------------------------

@agencies.post("/v1/templates", summary="Create a template (version 1)", caller=calling_agency, body=TemplateBody,
               answers={201: Template, **AGENCY},
               refusals=(*AGENCY_REFUSALS, TemplateSyntax, UndeclaredPlaceholder, TemplateRender, TemplateTooCostly))
async def create_template(request: web.Request, caller: Agency, body: TemplateBody) -> Template:
    notify = request.app[NOTIFY]
    return await templates.create(notify.db, caller.client_id, body, notify.clock.now())


@agencies.get("/v1/templates", summary="The agency's templates (latest versions)", caller=calling_agency,
              answers={200: TemplateList, **AGENCY}, refusals=AGENCY_REFUSALS)
async def list_templates(request: web.Request, caller: Agency) -> TemplateList:
    return await templates.list_latest(request.app[NOTIFY].db, caller.client_id)


@agencies.get("/v1/templates/{template_id}", summary="A template: its latest version, or `?version=n`", caller=calling_agency,
              answers={200: Template, **AGENCY}, refusals=(*AGENCY_REFUSALS, BadQuery, BadVersion, NotFound),
              query_params=(("version", {"type": "integer", "minimum": 1}, False),))
async def show_template(request: web.Request, caller: Agency) -> Template:
    return await templates.show(request.app[NOTIFY].db, caller.client_id, request.match_info["template_id"], _version(request))


@agencies.put("/v1/templates/{template_id}", summary="Write a new version of a template", caller=calling_agency, body=TemplateBody,
              answers={201: Template, **AGENCY},
              refusals=(*AGENCY_REFUSALS, TemplateSyntax, UndeclaredPlaceholder, TemplateRender, TemplateTooCostly, NotFound,
                        VersionConflict))
async def new_template_version(request: web.Request, caller: Agency, body: TemplateBody) -> Template:
    notify = request.app[NOTIFY]
    return await templates.new_version(notify.db, caller.client_id, request.match_info["template_id"], body, notify.clock.now())


# -- agencies: notifications, jobs, callbacks -----------------------------------

@agencies.post("/v1/notifications", summary="Send a template to a citizen known by their pairwise sub", caller=calling_agency,
               body=NotificationBody, answers={201: NotificationAccepted, **AGENCY},
               refusals=(*SEND_REFUSALS, UnknownRecipient), description=IDEMPOTENCY)
async def send_notification(request: web.Request, caller: Agency, body: NotificationBody) -> web.Response:
    accepted, created = await notifications.send(request.app[NOTIFY], caller, body, request.headers.get(idempotency.HEADER))
    return _created(accepted, created, f"/v1/notifications/{accepted.notification_id}")


@agencies.post("/v1/notifications/batch", summary="Send a template to up to 10,000 citizens: a job", caller=calling_agency,
               body=BatchBody, answers={201: JobAccepted, **AGENCY},
               refusals=(*SEND_REFUSALS, BatchTooLarge), description=IDEMPOTENCY)
async def send_batch(request: web.Request, caller: Agency, body: BatchBody) -> web.Response:
    accepted, created = await jobs.send_batch(request.app[NOTIFY], caller, body, request.headers.get(idempotency.HEADER))
    return _created(accepted, created, f"/v1/notifications/batch/{accepted.job_id}")


@agencies.get("/v1/notifications/batch/{job_id}", summary="A job's progress: counts by status", caller=calling_agency,
              answers={200: JobProgress, **AGENCY}, refusals=(*AGENCY_REFUSALS, NotFound), headers=NO_STORE)
async def job_progress(request: web.Request, caller: Agency) -> JobProgress:
    return await jobs.job_progress(request.app[NOTIFY], caller, request.match_info["job_id"])


@agencies.get("/v1/notifications/jwks", summary="The keys that sign status callbacks (JWKS)", answers={200: JWKS},
              security=(), headers={"Cache-Control": "max-age=60"})
async def jwks(request: web.Request) -> JWKS:
    return await callbacks.signing_keys(request.app[NOTIFY])


@agencies.put("/v1/notifications/callback", summary="Register the agency's status callback URL", caller=calling_agency,
              body=CallbackBody, answers={200: Callback, **AGENCY}, refusals=(*AGENCY_REFUSALS, CallbackURLRefused))
async def register_callback(request: web.Request, caller: Agency, body: CallbackBody) -> Callback:
    notify = request.app[NOTIFY]
    return await callbacks.register(notify.db, caller.client_id, body, notify.clock.now())


@agencies.get("/v1/notifications/callback", summary="The registered status callback URL", caller=calling_agency,
              answers={200: Callback, **AGENCY}, refusals=(*AGENCY_REFUSALS, NotFound))
async def show_callback(request: web.Request, caller: Agency) -> Callback:
    return await callbacks.show(request.app[NOTIFY].db, caller.client_id)


@agencies.delete("/v1/notifications/callback", summary="Stop status callbacks", caller=calling_agency,
                 answers={204: None, **AGENCY}, refusals=AGENCY_REFUSALS)
async def remove_callback(request: web.Request, caller: Agency) -> None:
    await callbacks.remove(request.app[NOTIFY].db, caller.client_id)


@agencies.get("/v1/notifications/{notification_id}", summary="A notification's status and timeline", caller=calling_agency,
              answers={200: Notification, **AGENCY}, refusals=(*AGENCY_REFUSALS, NotFound), headers=NO_STORE)
async def show_notification(request: web.Request, caller: Agency) -> Notification:
    return await notifications.status(request.app[NOTIFY], caller, request.match_info["notification_id"])


# -- citizens: inbox and preferences -------------------------------------------

@citizens.get("/v1/inbox", summary="The citizen's inbox, newest first (`?unread=true`)", caller=calling_device,
              answers={200: Inbox, **DEVICE}, refusals=(*DEVICE_REFUSALS, BadQuery), headers=NO_STORE,
              query_params=(("unread", {"type": "boolean"}, False),))
async def list_inbox(request: web.Request, caller: Citizen) -> Inbox:
    _only(request, "unread")
    unread = request.query.get("unread", "false")
    if unread not in ("true", "false"):
        raise BadQuery("unread is true or false")
    return await inbox.list_items(request.app[NOTIFY], caller, unread_only=unread == "true")


# An endless event stream has no response schema a generic client (or schemathesis) could check, only hang on:
# documented in docs/api.md, left out of the OpenAPI document.
@citizens.get("/v1/inbox/stream", summary="New inbox items as server-sent events", caller=calling_device,
              answers={200: "text/event-stream"}, refusals=(*DEVICE_REFUSALS, TooManyStreams), documented=False)
async def stream_inbox(request: web.Request, caller: Citizen) -> web.StreamResponse:
    """Server-sent events: one `message` event per new inbox item, a comment line as heartbeat."""
    slots = request.app[STREAM_SLOTS]
    if not slots.take(caller.device_id):
        raise TooManyStreams(f"this device already has {slots.per_device} open inbox streams; close one first")
    try:
        return await _stream(request, request.app[NOTIFY], caller)
    finally:
        slots.give_back(caller.device_id)


async def _stream(request: web.Request, notify: Notify, citizen: Citizen) -> web.StreamResponse:
    """New inbox items as they are delivered. The stream asks the database when the process's inbox feed says an item
    for this account was inserted (and once at the start), not every `sse_poll_s`: an open stream with nothing new
    costs the database nothing. Every `sse_poll_s` it still checks, in memory, that its device, token and account
    stand (a revocation or the token's expiry ends it) and that the client is still there."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    SSE_CONNECTIONS.inc()
    revocations = request.app[REVOCATIONS].list
    feed = request.app[INBOX_FEED]
    woken = feed.subscribe(citizen.account_id)
    woken.set()  # look once now
    # Look back a little: an item delivered while the client was connecting is not missed; ids deduplicate.
    since = notify.clock.now() - timedelta(seconds=2)
    sent: set[str] = set()
    last_write = asyncio.get_running_loop().time()
    try:
        await response.write(b": connected\n\nretry: 2000\n\n")
        while not request.app[CLOSING].is_set():
            if request.transport is None or request.transport.is_closing():
                break  # the client went away: free its place now, not at the next failed write
            # Against the real time, as the token was verified (not the context's clock, which tests move).
            ended = streams.end_reason(citizen.claims or {}, revocations)
            if ended:
                await response.write(f": closed: {ended}\n\n".encode())
                break
            if woken.is_set():
                woken.clear()  # before the query: an item inserted during it wakes the next round
                for item in await inbox.delivered_since(notify, citizen.account_id, since):
                    if item.id in sent:
                        continue
                    sent.add(item.id)
                    payload = json.dumps(item.model_dump(mode="json"), ensure_ascii=False)
                    await response.write(f"id: {item.id}\nevent: message\ndata: {payload}\n\n".encode())
                    last_write = asyncio.get_running_loop().time()
                if len(sent) > 1000:
                    sent.clear()
                    since = notify.clock.now() - timedelta(seconds=2)
            now = asyncio.get_running_loop().time()
            if now - last_write >= notify.settings.sse_heartbeat_s:
                await response.write(b": heartbeat\n\n")
                last_write = now
            await event_or_timeout(woken, notify.settings.sse_poll_s)
    except ConnectionResetError:
        pass  # the client went away
    finally:
        feed.unsubscribe(citizen.account_id, woken)
        SSE_CONNECTIONS.dec()
    return response


@citizens.post("/v1/inbox/{item_id}/read", summary="Mark a message read", caller=calling_device,
               answers={200: InboxItem, **DEVICE}, refusals=(*DEVICE_REFUSALS, NotFound))
async def read_item(request: web.Request, caller: Citizen) -> InboxItem:
    return await inbox.mark_read(request.app[NOTIFY], caller, request.match_info["item_id"])


@citizens.get("/v1/preferences", summary="The citizen's notification preferences", caller=calling_device,
              answers={200: Preferences, **DEVICE}, refusals=DEVICE_REFUSALS, headers=NO_STORE)
async def show_preferences(request: web.Request, caller: Citizen) -> Preferences:
    notify = request.app[NOTIFY]
    return await preferences.show(notify.db, notify.cipher, caller.account_id)


@citizens.put("/v1/preferences", summary="Replace the citizen's notification preferences", caller=calling_device,
              body=PreferencesBody, answers={200: Preferences, **DEVICE}, refusals=DEVICE_REFUSALS)
async def replace_preferences(request: web.Request, caller: Citizen, body: PreferencesBody) -> Preferences:
    notify = request.app[NOTIFY]
    return await preferences.replace(notify.db, notify.cipher, caller.account_id, body, notify.clock.now())


@citizens.get("/v1/notify/export", summary="notify's part of the citizen's personal-data export (signed JWS)",
              caller=calling_device, answers={200: ExportPart, **DEVICE}, refusals=DEVICE_REFUSALS, headers=NO_STORE,
              description="The inbox, preferences with contact details and the notifications addressed to the citizen, "
                          "as a JWS (typ harbour-export+jwt) signed with a key of /v1/notifications/jwks (docs/api.md).")
async def export_part(request: web.Request, caller: Citizen) -> ExportPart:
    return await export.export(request.app[NOTIFY], caller)


ENDPOINTS = (agencies, citizens)
routes = [route for group in ENDPOINTS for route in group.routes]
OPERATIONS = tuple(operation for group in ENDPOINTS for operation in group.operations)

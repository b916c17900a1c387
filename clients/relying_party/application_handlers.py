"""The application form: pre-filled with Harbour ID (approved on the phone), checked, reviewed as a PDF."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .application import PLANS, Application, InvalidApplication
from .config import FORM_FIELDS
from .messages import MESSAGES
from .pages import SITE, checked_form, error_page, outcome_json, page, session_of, signed_in
from .platform import PlatformError

PREFILL_PURPOSE = "Open an electricity account"

routes = web.RouteTableDef()


@routes.get("/apply")
async def apply_form(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    return page(request, "apply.html", form=session.data.get("form", {}), prefilled="form" in session.data, problems={}, plans=PLANS)


@routes.post("/apply/prefill")
async def prefill(request: web.Request) -> web.Response:
    session = session_of(request)
    user = signed_in(session)
    await checked_form(request, session)
    try:
        request_id = await request.app[SITE].platform.ask_for_fields(user["access_token"], FORM_FIELDS, PREFILL_PURPOSE)
    except PlatformError as failed:
        return error_page(request, str(failed), status=502)
    session.data["prefill_request"] = request_id
    raise web.HTTPSeeOther("/apply/waiting")


@routes.get("/apply/waiting")
async def prefill_waiting(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    return page(request, "waiting.html", instruction=MESSAGES[session.language]["waiting_prefill"],
                status_url="/status/prefill", check_url="/apply/waiting")


@routes.get("/status/prefill")
async def prefill_status(request: web.Request) -> web.Response:
    session = session_of(request)
    user = signed_in(session)
    site = request.app[SITE]
    async with site.lock(session):
        request_id = session.data.get("prefill_request")
        if request_id is None:
            return web.json_response({"status": "done", "next": "/apply"})
        try:
            status = await site.platform.form_status(user["access_token"], request_id)
            if status == "approved":
                released = await site.platform.released_fields(user["access_token"], request_id, user["sub"])
                session.data["form"] = {"name": released.get("name_en", ""), "address": released.get("address", ""),
                                        "phone": released.get("phone", ""), "email": released.get("email", ""), "plan": "standard"}
                session.data.pop("prefill_request")
                return web.json_response({"status": "done", "next": "/apply"})
        except PlatformError as failed:
            return web.json_response({"status": "failed", "message": str(failed)})
    return outcome_json(session, status)


@routes.post("/apply")
async def submit_application(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    form = await checked_form(request, session)
    try:
        application = Application.from_form(form)
    except InvalidApplication as invalid:
        return page(request, "apply.html", status=422, form=form, prefilled="form" in session.data,
                    problems=invalid.problems, plans=PLANS)
    session.data["application"] = application
    # fpdf2 parses the font file (CPU-bound): off the event loop.
    session.data["draft_pdf"] = await asyncio.to_thread(application.to_pdf, request.app[SITE].config.pdf_font)
    raise web.HTTPSeeOther("/review")


@routes.get("/review")
async def review(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "application" not in session.data:
        raise web.HTTPSeeOther("/apply")
    return page(request, "review.html", application=session.data["application"])


@routes.get("/application/draft.pdf")
async def draft_pdf(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "draft_pdf" not in session.data:
        raise web.HTTPNotFound()
    return web.Response(body=session.data["draft_pdf"], content_type="application/pdf")

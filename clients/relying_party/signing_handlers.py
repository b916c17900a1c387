"""Signing the application with Harbour ID (approved on the phone), the confirmation in the citizen's inbox, the signed PDF."""

from __future__ import annotations

import logging

from aiohttp import web

from . import confirmation
from .application import SIGNATURE_BOX, Application
from .messages import MESSAGES
from .oidc import LoginFailed
from .pages import SITE, Site, checked_form, error_page, outcome_json, page, session_of, signed_in
from .platform import PlatformError

log = logging.getLogger("harbour_power")

routes = web.RouteTableDef()


@routes.post("/sign")
async def sign(request: web.Request) -> web.Response:
    session = session_of(request)
    user = signed_in(session)
    await checked_form(request, session)
    application: Application | None = session.data.get("application")
    if application is None:
        raise web.HTTPSeeOther("/apply")
    try:
        # A visible signature in the PDF's signature box, showing the applicant's name as they typed it.
        request_id = await request.app[SITE].platform.ask_to_sign(
            user["access_token"], session.data["draft_pdf"], application.document_name, "Open an electricity account",
            appearance={"page": 1, "box": SIGNATURE_BOX, "name": application.name})
    except PlatformError as failed:
        return error_page(request, str(failed), status=502)
    session.data["sign_request"] = request_id
    raise web.HTTPSeeOther("/sign/waiting")


@routes.get("/sign/waiting")
async def sign_waiting(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "application" not in session.data:
        raise web.HTTPSeeOther("/apply")
    instruction = MESSAGES[session.language]["waiting_sign"].format(document=session.data["application"].document_name)
    return page(request, "waiting.html", instruction=instruction, status_url="/status/sign", check_url="/sign/waiting")


@routes.get("/status/sign")
async def sign_status(request: web.Request) -> web.Response:
    session = session_of(request)
    user = signed_in(session)
    site = request.app[SITE]
    async with site.lock(session):
        request_id = session.data.get("sign_request")
        if request_id is None:
            return web.json_response({"status": "done", "next": "/done" if "signed_pdf" in session.data else "/review"})
        try:
            status = await site.platform.signing_status(user["access_token"], request_id)
            if status == "signed":
                session.data["signed_pdf"] = await site.platform.signed_pdf(user["access_token"], request_id)
                session.data.pop("sign_request")
                session.data["confirmation_sent"] = await send_confirmation(site, user, session.data["application"])
                return web.json_response({"status": "done", "next": "/done"})
        except PlatformError as failed:
            return web.json_response({"status": "failed", "message": str(failed)})
    return outcome_json(session, status)


async def send_confirmation(site: Site, user: dict, application: Application) -> bool:
    """Best effort: the application stands even if the inbox cannot be reached; the page says which it was."""
    try:
        token = await site.login.client_token("notify")
        if site.template_id is None:
            site.template_id = await site.platform.ensure_template(
                token, confirmation.TEMPLATE_NAME, confirmation.PLACEHOLDERS, confirmation.CONTENT)
        await site.platform.notify(token, site.template_id, user["sub"],
                                   {"reference": application.reference, "address": application.address}, application.reference)
        return True
    except (PlatformError, LoginFailed) as failed:
        log.warning("confirmation not sent for %s: %s", application.reference, failed)
        return False


@routes.get("/done")
async def done(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "signed_pdf" not in session.data:
        raise web.HTTPSeeOther("/review")
    return page(request, "done.html", application=session.data["application"], confirmation_sent=session.data["confirmation_sent"])


@routes.get("/application/signed.pdf")
async def signed_pdf(request: web.Request) -> web.Response:
    session = session_of(request)
    signed_in(session)
    if "signed_pdf" not in session.data:
        raise web.HTTPNotFound()
    reference = session.data["application"].reference
    return web.Response(body=session.data["signed_pdf"], content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{reference}-signed.pdf"'})

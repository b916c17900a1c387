"""CIBA in process: a client names a citizen, the phone decides, the client polls the token endpoint."""

from __future__ import annotations

import aiohttp

from libs.approvals import unseal_prompt
from services.auth.clients.registry import find_client
from services.auth.events import others_prompts
from services.auth.oidc.discovery import CIBA_GRANT
from services.auth.oidc.pairwise import subject_for

from ...support.auth_stand_in import published
from .oidc_steps import NO_STORE, client_auth, oauth_error, register, token_request


async def sub_at(auth_service, rp: dict, phone) -> str:
    """The citizen's pairwise sub at this client, as a login would have told it."""
    context = auth_service.context
    client = await find_client(context.db, rp["client_id"])
    return await context.transaction(lambda s: subject_for(context, s, client.sector, phone.profile.account_id))


async def backchannel(auth_service, rp: dict, **form) -> aiohttp.ClientResponse:
    return await auth_service.client.post("/oidc/bc-authorize", data={"scope": "openid", **form},
                                          headers=client_auth(rp))


async def test_the_client_polls_until_the_citizen_approves(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    started = await backchannel(auth_service, rp, login_hint=await sub_at(auth_service, rp, phone), binding_message="Call 4417")
    assert started.status == 200 and {k: started.headers[k] for k in NO_STORE} == NO_STORE
    request = await started.json()
    assert request["interval"] == 2 and request["expires_in"] == auth_service.context.settings.authorization_ttl_s

    poll = {"grant_type": CIBA_GRANT, "auth_req_id": request["auth_req_id"]}
    await oauth_error(await token_request(auth_service, rp, **poll), 400, "authorization_pending")
    await oauth_error(await token_request(auth_service, rp, **poll), 400, "slow_down")  # faster than the interval
    clock.advance(request["interval"])
    # Each poll too soon adds 5 s to the wait (CIBA §11).
    await oauth_error(await token_request(auth_service, rp, **poll), 400, "slow_down")
    clock.advance(request["interval"] + 10)
    await oauth_error(await token_request(auth_service, rp, **poll), 400, "authorization_pending")
    clock.advance(request["interval"])
    [prompt] = await phone.pending()
    assert prompt["details"]["binding_message"] == "Call 4417"
    await phone.approve(prompt["approval_id"])
    tokens = await token_request(auth_service, rp, **poll)
    assert tokens.status == 200 and "id_token" in await tokens.json()
    clock.advance(request["interval"])
    await oauth_error(await token_request(auth_service, rp, **poll), 400, "invalid_grant")  # once


async def test_an_unanswered_request_expires(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    started = await backchannel(auth_service, rp, login_hint=await sub_at(auth_service, rp, phone), requested_expiry="30")
    request = await started.json()
    assert request["expires_in"] == 30
    clock.advance(30)
    expired = await token_request(auth_service, rp, grant_type=CIBA_GRANT, auth_req_id=request["auth_req_id"])
    await oauth_error(expired, 400, "expired_token")


async def test_a_declined_request_is_access_denied(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    request = await (await backchannel(auth_service, rp, login_hint=await sub_at(auth_service, rp, phone))).json()
    [prompt] = await phone.pending()
    await phone.deny(prompt["approval_id"])
    denied = await token_request(auth_service, rp, grant_type=CIBA_GRANT, auth_req_id=request["auth_req_id"])
    assert await oauth_error(denied, 400, "access_denied") == "the citizen declined"


async def test_what_the_backchannel_endpoint_refuses(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    sub = await sub_at(auth_service, rp, phone)
    await oauth_error(await backchannel(auth_service, rp, login_hint=sub, scope="profile"), 400, "invalid_scope")
    await oauth_error(await backchannel(auth_service, rp), 400, "invalid_request")
    await oauth_error(await backchannel(auth_service, rp, login_hint="someone-else"), 400, "unknown_user_id")
    await oauth_error(await backchannel(auth_service, rp, login_hint=sub, binding_message="x" * 41), 400, "invalid_binding_message")
    await oauth_error(await backchannel(auth_service, rp, login_hint=sub, binding_message="a\u202eb"), 400, "invalid_binding_message")
    # A basic identity cannot approve what asks for plus: CIBA §13's 403, and nothing reaches the phone.
    plus = await backchannel(auth_service, rp, login_hint=sub, acr_values="urn:harbour-id:loa:plus")
    assert await oauth_error(plus, 403, "access_denied") == "this service needs an identity proofed in person (plus)"
    assert await phone.pending() == []


async def test_the_citizen_is_called_to_the_phone_and_auth_passes_over_its_own_prompt(auth_service, tmp_path):
    # The relying party asked from elsewhere: nothing on the phone says so until notify's "approve on your phone"
    # message — published as approval.requested in the prompt's own transaction, its free text sealed like any
    # service's prompt. auth's consumer of that topic passes over its own (the prompt is in its queue already).
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    started = await backchannel(auth_service, rp, login_hint=await sub_at(auth_service, rp, phone), binding_message="Call 4417")
    request_id = (await started.json())["auth_req_id"]

    [event] = await published(auth_service.context, "approval.requested", f"login-{request_id}")
    assert event.source == "/auth" and b"Call 4417" not in event.to_json()
    assert (event.data["account_id"], event.data["action"], event.data["requester"]["client_id"]) == (
        phone.profile.account_id, "login", rp["client_id"])
    assert unseal_prompt(event.data, auth_service.context.settings.sealing_jwk).details["binding_message"] == "Call 4417"
    assert not others_prompts(event)
    assert others_prompts(event.model_copy(update={"source": "/signing"}))
    [prompt] = await phone.pending()
    assert prompt["approval_id"] == f"login-{request_id}"

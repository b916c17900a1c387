"""Revocation every service honours (issue 14, items 3, 4, 8a), through the gateway and at each service itself.

A device token lives 10 minutes and an access token 10 minutes: without the
revocation events, everything below would keep answering for that long.
Every check is polled against a deadline of 2 seconds after the revocation.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import aiohttp
import pytest
import requests

from clients.citizen_app import CitizenApp
from libs.devstack import processes

from ..support.calls import device_auth
from ..support.citizens import enrolled_app
from ..support.formfill import FIELDS, created
from ..support.oidc import REDIRECT, app_link_of, authorize_url, login, register, token_request
from ..support.operator import admin
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
WITHIN_S = 2.0


def direct(platform, service: str) -> str:
    """The service's own address, behind the gateway: each service must refuse by itself too."""
    return platform.stack.config.service_url(service)


async def status(session: aiohttp.ClientSession, method: str, url: str, token: str, *, app=None, **kwargs) -> int:
    """`app`: the token is that citizen app's device token, presented as the app does (DPoP, its device key)."""
    headers = device_auth(app, token, method, url) if app is not None else {"Authorization": f"Bearer {token}"}
    async with session.request(method, url, headers=headers, **kwargs) as response:
        return response.status


async def all_refused_within(checks: dict[str, object], since: float, within_s: float = WITHIN_S) -> dict[str, float]:
    """Poll every check (an async callable answering a status) until it answers 401; return when each did, in seconds."""
    refused_after: dict[str, float] = {}
    last: dict[str, int] = {}
    while len(refused_after) < len(checks):
        for name, check in checks.items():
            if name in refused_after:
                continue
            last[name] = await check()
            if last[name] == 401:
                refused_after[name] = time.monotonic() - since
        if time.monotonic() - since > within_s and len(refused_after) < len(checks):
            pending = {n: last[n] for n in checks if n not in refused_after}
            raise AssertionError(f"still answered after {within_s} s: {pending}")
        await asyncio.sleep(0.05)
    return refused_after


async def collect(stream, seen: list) -> None:
    async for event in stream:
        seen.append(event)


async def test_a_revoked_device_is_refused_everywhere_and_its_open_stream_closes(platform, kiosk, metadata, tmp_path):
    phone = await enrolled_app(platform, kiosk, tmp_path, "phone")
    gateway = platform.gateway
    rp = register(platform, client_name="Harbour Library", scope="openid formfill", formfill_fields=FIELDS)
    rp_token = token_request(metadata, rp, grant_type="client_credentials", scope="formfill").json()["access_token"]
    unclaimed = await created(platform, rp_token, [("name_en", True)])
    token = await phone.device_token()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        reads = {
            "gateway /v1/inbox": lambda: status(session, "GET", gateway + "/v1/inbox", token, app=phone),
            "gateway /v1/preferences": lambda: status(session, "GET", gateway + "/v1/preferences", token, app=phone),
            "gateway /v1/consents": lambda: status(session, "GET", gateway + "/v1/consents", token, app=phone),
            "notify /v1/inbox": lambda: status(session, "GET", direct(platform, "notify") + "/v1/inbox", token, app=phone),
            "notify /v1/preferences": lambda: status(session, "GET", direct(platform, "notify") + "/v1/preferences", token, app=phone),
            "formfill /v1/consents": lambda: status(session, "GET", direct(platform, "formfill") + "/v1/consents", token, app=phone),
        }
        for name, check in reads.items():
            assert await check() == 200, name
        claims = {
            "gateway claim": lambda: status(session, "POST", f"{gateway}/v1/formfill/requests/{unclaimed['request_id']}/claim", token, app=phone, json={}),
            "formfill claim": lambda: status(session, "POST", f"{direct(platform, 'formfill')}/v1/formfill/requests/{unclaimed['request_id']}/claim", token, app=phone, json={}),
        }

        seen: list = []
        stream = asyncio.create_task(collect(phone.stream(), seen))
        await asyncio.wait_for(_until(lambda: {"comment": "connected"} in seen), 10)

        await phone.revoke(phone.profile.device_id)
        revoked_at = time.monotonic()
        refused = await all_refused_within({**reads, **claims}, revoked_at)
        assert max(refused.values()) <= WITHIN_S, refused

        # The stream authorised before the revocation ends by itself, saying why.
        await asyncio.wait_for(stream, timeout=max(0.1, revoked_at + WITHIN_S + 0.5 - time.monotonic()))
        assert {"comment": "closed: the device has been revoked"} in seen
        # And a new one is refused at the edge.
        assert await status(session, "GET", gateway + "/v1/inbox/stream", token, app=phone) == 401
        # The refusal is the OAuth one (RFC 6750): invalid_token, as problem+json.
        async with session.get(gateway + "/v1/inbox", headers=device_auth(phone, token, "GET", gateway + "/v1/inbox")) as response:
            assert response.content_type == "application/problem+json"
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.05)


async def test_a_fourth_inbox_stream_of_one_device_is_429(platform, kiosk, tmp_path):
    phone = await enrolled_app(platform, kiosk, tmp_path, "phone")
    token = await phone.device_token()
    url = direct(platform, "notify") + "/v1/inbox/stream"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
        held = []
        try:
            for _ in range(3):
                response = await session.get(url, headers=device_auth(phone, token, "GET", url))
                held.append(response)
                assert response.status == 200
                assert (await response.content.readline()).startswith(b": connected")
            async with session.get(platform.gateway + "/v1/inbox/stream", headers=device_auth(phone, token, "GET", platform.gateway + "/v1/inbox/stream")) as fourth:
                assert fourth.status == 429
                assert fourth.content_type == "application/problem+json"
                assert (await fourth.json(content_type=None))["type"].endswith("/too-many-streams")
                assert int(fourth.headers["Retry-After"]) >= 1
            held[0].close()  # closing one frees its place (notify sees the connection go within a poll)

            async def fourth_again() -> int:
                response = await session.get(url, headers=device_auth(phone, token, "GET", url))
                held.append(response)
                return response.status

            deadline = time.monotonic() + 5
            while (code := await fourth_again()) != 200:
                assert code == 429 and time.monotonic() < deadline, code
                await asyncio.sleep(0.1)
        finally:
            for response in held:
                response.close()


def cc_client(platform) -> tuple[dict, str]:
    """A relying party acting for itself with formfill, sign and notify: its client-credentials token."""
    created_client = admin(platform, "create-client", "--kind", "relying_party", "--name", f"Revocation RP {uuid.uuid4().hex[:6]}",
                           "--scope", "openid", "--scope", "formfill", "--scope", "sign", "--scope", "notify",
                           "--formfill-field", "name_en", "--redirect-uri", REDIRECT, "--reason", "revocation tests")
    assert created_client.returncode == 0, created_client.stderr
    client = json.loads(created_client.stdout)
    granted = requests.post(platform.gateway + "/oidc/token", data={"grant_type": "client_credentials", "scope": "formfill sign notify"},
                            auth=(client["client_id"], client["client_secret"]), timeout=10)
    assert granted.status_code == 200, granted.text
    return client, granted.json()["access_token"]


def resource_checks(platform, session: aiohttp.ClientSession, token: str, *, notify: bool = True, sign: bool = True) -> dict:
    """Calls that answer 404/200 with a good token (nothing by that id), 401 with a revoked one: at the gateway and each service."""
    checks = {}
    for where, base in (("gateway", platform.gateway), ("service", None)):
        checks[f"{where} formfill"] = (lambda b=base or direct(platform, "formfill"):
                                       status(session, "GET", f"{b}/v1/formfill/requests/nothing-{uuid.uuid4().hex[:6]}", token))
        if sign:
            checks[f"{where} signing"] = (lambda b=base or direct(platform, "signing"):
                                          status(session, "GET", f"{b}/v1/signing/requests/nothing-{uuid.uuid4().hex[:6]}", token))
        if notify:
            checks[f"{where} notify"] = (lambda b=base or direct(platform, "notify"):
                                         status(session, "GET", f"{b}/v1/templates", token))
    return checks


async def test_an_access_token_revoked_at_oidc_revoke_is_refused_by_formfill_signing_and_notify(platform, metadata):
    client, token = cc_client(platform)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        checks = resource_checks(platform, session, token)
        for name, check in checks.items():
            assert await check() in (200, 404), name
        revoked = requests.post(metadata["revocation_endpoint"], data={"token": token}, auth=(client["client_id"], client["client_secret"]), timeout=10)
        assert revoked.status_code == 200
        refused = await all_refused_within(checks, time.monotonic())
        assert max(refused.values()) <= WITHIN_S, refused


async def test_a_replayed_code_revokes_its_access_token_everywhere(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Harbour Water", scope="openid formfill", formfill_fields=FIELDS)
    url, verifier = authorize_url(metadata, rp["client_id"], scope="openid formfill")
    outcome = await citizen.open_link(app_link_of(requests.get(url, timeout=10).text))
    code = re.search(r"[?&]code=([^&]+)", outcome["redirect_to"]).group(1)
    exchange = dict(grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    tokens = token_request(metadata, rp, **exchange).json()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        checks = resource_checks(platform, session, tokens["access_token"], notify=False, sign=False)
        for name, check in checks.items():
            assert await check() == 404, name
        replay = token_request(metadata, rp, **exchange)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        refused = await all_refused_within(checks, time.monotonic())
        assert max(refused.values()) <= WITHIN_S, refused


async def test_a_reused_refresh_token_revokes_its_familys_access_tokens_everywhere(platform, kiosk, metadata, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Harbour Gas", scope="openid formfill offline_access", formfill_fields=FIELDS)
    tokens, _ = await login(platform, metadata, rp, citizen, scope="openid formfill offline_access")
    rotated = token_request(metadata, rp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    latest = rotated.json()["access_token"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        checks = resource_checks(platform, session, latest, notify=False, sign=False)
        for name, check in checks.items():
            assert await check() == 404, name
        reused = token_request(metadata, rp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        refused = await all_refused_within(checks, time.monotonic())
        assert max(refused.values()) <= WITHIN_S, refused


async def test_a_suspended_accounts_tokens_are_refused_and_only_new_ones_work_after_reinstatement(platform, kiosk, metadata, tmp_path):
    citizen: CitizenApp = await enrolled_app(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Harbour Post", scope="openid formfill", formfill_fields=FIELDS)
    tokens, _ = await login(platform, metadata, rp, citizen, scope="openid formfill")
    device_token = await citizen.device_token()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        checks = {
            **resource_checks(platform, session, tokens["access_token"], notify=False, sign=False),
            "gateway inbox": lambda: status(session, "GET", platform.gateway + "/v1/inbox", device_token, app=citizen),
            "notify inbox": lambda: status(session, "GET", direct(platform, "notify") + "/v1/inbox", device_token, app=citizen),
        }
        for name, check in checks.items():
            assert await check() in (200, 404), name
        suspended = admin(platform, "set-state", citizen.profile.account_id, "suspended", "--reason", "reported stolen")
        assert suspended.returncode == 0, suspended.stderr
        refused = await all_refused_within(checks, time.monotonic())
        assert max(refused.values()) <= WITHIN_S, refused

        reinstated = admin(platform, "set-state", citizen.profile.account_id, "active", "--reason", "found again")
        assert reinstated.returncode == 0, reinstated.stderr
        # A token issued after the reinstatement works (iat is in whole seconds: one from the suspension's
        # own second is still refused, so ask again until a later one is issued).
        deadline = time.monotonic() + WITHIN_S + 1
        while await status(session, "GET", platform.gateway + "/v1/inbox", await citizen.device_token(), app=citizen) != 200:
            assert time.monotonic() < deadline, "a token issued after the reinstatement is still refused"
            await asyncio.sleep(0.05)
        # The tokens from before the suspension stay refused until they expire.
        assert await checks["gateway inbox"]() == 401 and await checks["notify inbox"]() == 401


async def test_a_restarted_service_still_refuses_what_was_revoked_before_it_started(platform, metadata):
    client, token = cc_client(platform)
    revoked = requests.post(metadata["revocation_endpoint"], data={"token": token}, auth=(client["client_id"], client["client_secret"]), timeout=10)
    assert revoked.status_code == 200
    url = f"{direct(platform, 'formfill')}/v1/formfill/requests/nothing-here"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await all_refused_within({"formfill": lambda: status(session, "GET", url, token)}, time.monotonic())

        spec = platform.stack.service_spec("formfill")
        assert processes.stop(spec.pid_file, spec.marker)
        processes.start(spec)
        # From its first answer on, the new process refuses the token: 503 while it reads the revocations, then 401.
        answers = []
        deadline = time.monotonic() + 60
        while not answers or answers[-1] != 401:
            assert time.monotonic() < deadline, answers[-5:]
            try:
                answers.append(await status(session, "GET", url, token))
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
        assert set(answers) <= {503, 401}, answers
        await eventually(lambda: requests.get(direct(platform, "formfill") + "/readyz", timeout=10).status_code == 200, timeout_s=60)

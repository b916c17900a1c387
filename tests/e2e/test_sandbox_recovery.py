"""Sandbox self-service recovery (issue 18): a test citizen who lost their phone gets a new activation code without
a kiosk, with the same identity data and selfie as self-registration.

Against the whole stack through the gateway (a sandbox, like every test platform): the kiosk replacement's effects —
the old phone's token refused by every service within seconds, the security alert, the events — for the same account
and pairwise sub, the assurance left basic; refused proofing changes nothing. Production refuses it:
tests/e2e/test_production_mode.py.
"""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from clients.citizen_app import CitizenApp, Profile
from clients.citizen_app.app import AppError
from services.auth.oidc.tokens import ACR_BASIC

from ..support.calls import device_auth
from ..support.database import mongo
from ..support.oidc import claims_of, login, register
from ..support.people import identity, random_hkid, selfie
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
WITHIN_S = 5.0  # the revocations topic's promise is 2 s (docs/api.md); a busy shared machine gets some slack


async def status_with(token: str, url: str, app) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url, headers=device_auth(app, token, "GET", url)) as response:
            return response.status


async def outbox_events(platform, account_id: str, event_type: str) -> list[dict]:
    async with mongo(platform.infra.mongo_uri) as client:
        docs = await client[platform.database("auth")]["outbox"].find({"key": account_id, "type": event_type}).to_list()
    return [json.loads(doc["value"]) for doc in docs]


async def stored(platform, account_id: str) -> dict:
    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("auth")]
        return {"account": await db["accounts"].find_one({"_id": account_id}),
                "devices": await db["devices"].find({"account_id": account_id}).sort("_id", 1).to_list()}


async def test_a_test_citizen_recovers_a_lost_phone_without_a_kiosk(platform, metadata, tmp_path):
    person = identity(language="en")
    enrolled = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, selfie())  # self-registration
    account_id = enrolled["account_id"]
    old = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "old.json")
    await old.activate(account_id, enrolled["activation_code"], "old phone")
    rp = register(platform, client_name="Harbour Sandbox Shop", scope="openid")
    tokens, _ = await login(platform, metadata, rp, old)
    sub_before = claims_of(tokens["id_token"])["sub"]
    old_token = await old.device_token()
    reads = {name: platform.stack.config.service_url(service) + path for name, service, path in (
        ("auth", "auth", "/v1/devices"), ("notify", "notify", "/v1/inbox"), ("formfill", "formfill", "/v1/consents"))}
    reads["gateway"] = platform.gateway + "/v1/inbox"
    assert {await status_with(old_token, url, old) for url in reads.values()} == {200}

    # Refused proofing changes nothing: another birth date, an unknown card.
    new = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json")
    before = await stored(platform, account_id)
    with pytest.raises(AppError) as other_person:
        await new.recover_in_sandbox({**person, "date_of_birth": "1960-02-29"}, selfie())
    assert other_person.value.status == 422 and other_person.value.problem["type"].endswith("/proofing-failed")
    with pytest.raises(AppError) as unknown:
        await new.recover_in_sandbox({**person, "id_number": random_hkid()}, selfie())
    assert unknown.value.status == 404 and unknown.value.problem["type"].endswith("/not-enrolled")
    assert await stored(platform, account_id) == before

    recovered = await new.recover_in_sandbox(person, selfie())
    since = time.monotonic()
    assert recovered["account_id"] == account_id and recovered["state"] == "active"
    assert recovered["assurance"] == "basic" and recovered["upgraded"] is False and recovered["devices_revoked"] == 1

    # The old phone's token is refused by every service within seconds, as after a kiosk replacement.
    async def all_refused():
        return {await status_with(old_token, url, old) for url in reads.values()} == {401}

    await eventually(all_refused, timeout_s=WITHIN_S, interval_s=0.05)
    print(f"old device token refused everywhere {time.monotonic() - since:.2f} s after the recovery answered")

    # The new phone activates with the new code: the same account and sub, still basic (nobody saw the citizen).
    await new.activate(account_id, recovered["activation_code"], "new phone")
    devices = {d["name"]: d["status"] for d in (await new.devices())["devices"]}
    assert devices == {"old phone": "revoked", "new phone": "active"}
    claims = claims_of((await login(platform, metadata, rp, new))[0]["id_token"])
    assert claims["sub"] == sub_before and claims["acr"] == ACR_BASIC

    # The old devices' alert reached the inbox; the events say how it happened.
    async def alerted():
        return [m for m in await new.inbox() if m["kind"] == "platform" and "1 earlier device" in m["body"]]

    [alert] = await eventually(alerted, timeout_s=20)
    # Its own words: no kiosk was involved.
    assert alert["priority"] == "high" and alert["subject"] == "Your phone was replaced (sandbox)" and "kiosk" in alert["body"]
    assert "without a kiosk" in alert["body"]
    [changed] = await outbox_events(platform, account_id, "identity.devices_replaced")
    assert changed["data"] == {"account_id": account_id, "devices_revoked": 1, "reason": "recovered in the sandbox"}
    [audit] = [e for e in await outbox_events(platform, account_id, "audit.recorded") if e["data"]["action"] == "identity.recover"]
    assert audit["data"]["actor"] == "sandbox-recovery" and audit["data"]["devices_revoked"] == 1
    assert not await outbox_events(platform, account_id, "identity.assurance_changed")

"""Adding a phone from one already bound (issue 18): the new phone shows a code, the old phone approves it.

Through the gateway against the whole stack, with the citizen app library as both phones: the new phone joins
the same account (the same pairwise `sub` at a relying party, from either phone), the citizen is alerted in the
inbox, names the devices and revokes one — the other keeps working, the revoked one's token is refused by every
service within seconds. Wrong, reused and guessed codes bind nothing; another citizen's phone cannot approve.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
import requests

from clients.citizen_app import CitizenApp, Profile
from clients.citizen_app.app import AppError
from libs.events.topics import APPROVAL_REQUESTED, IDENTITY

from ..support.broker import all_messages
from ..support.calls import device_auth
from ..support.database import mongo
from ..support.metrics import held_requests, samples
from ..support.oidc import claims_of, login, register
from ..support.people import identity, selfie
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
WITHIN_S = 5.0  # the revocations topic's promise is 2 s (docs/api.md); a busy shared machine gets some slack


def direct(platform, service: str) -> str:
    return platform.stack.config.service_url(service)


async def statuses(token: str, urls: dict[str, str], app) -> dict[str, int]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        found = {}
        for name, url in urls.items():
            async with session.get(url, headers=device_auth(app, token, "GET", url)) as response:
                found[name] = response.status
        return found


async def citizen(platform, tmp_path, name: str, **person) -> CitizenApp:
    """A sandbox self-registration with its first phone activated."""
    enrolled = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(identity(**person), selfie())
    phone = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / f"{name}.json")
    await phone.activate(enrolled["account_id"], enrolled["activation_code"], name)
    return phone


async def outbox_events(platform, account_id: str, event_type: str) -> list[dict]:
    async with mongo(platform.infra.mongo_uri) as client:
        docs = await client[platform.database("auth")]["outbox"].find({"key": account_id, "type": event_type}).to_list()
    return [json.loads(doc["value"]) for doc in docs]


async def test_a_second_phone_added_from_the_first_logs_in_as_the_same_citizen_until_revoked(platform, metadata, tmp_path):
    old = await citizen(platform, tmp_path, "old phone", language="en")
    account_id = old.profile.account_id
    rp = register(platform, client_name="Harbour Libraries", scope="openid")
    tokens, _ = await login(platform, metadata, rp, old)
    sub = claims_of(tokens["id_token"])["sub"]

    # The new phone asks and shows its code; the citizen types it on the old phone, which shows the new device's
    # name and key thumbprint and approves, device-signed; the new phone learns it is bound.
    new = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json")
    started = await new.start_pairing("new phone")
    approved = await old.approve_pairing(started["code"], key_thumbprint=started["key_thumbprint"])
    assert approved["status"] == "approved"
    bound = await new.finish_pairing(timeout_s=10)
    assert bound["status"] == "bound" and bound["account_id"] == account_id

    # Both phones approve logins, as the same citizen at the relying party.
    for phone in (new, old):
        tokens, _ = await login(platform, metadata, rp, phone)
        assert claims_of(tokens["id_token"])["sub"] == sub

    # The citizen is alerted (every phone of the account reads the inbox).
    async def alerted():
        return [m for m in await new.inbox() if m["kind"] == "platform" and m["subject"] == "A new device was added"]

    [alert] = await eventually(alerted, timeout_s=20)
    assert alert["priority"] == "high" and "approved on one of your devices" in alert["body"]
    [event] = await outbox_events(platform, account_id, "identity.device_added")
    assert event["data"]["device_id"] == bound["device_id"] and event["data"]["approved_by"] == old.profile.device_id

    # Naming: the old phone renames the new one, the new phone's list shows it.
    await old.rename_device(bound["device_id"], "Chan's tablet")
    listed = await new.devices()
    assert {d["name"]: d["status"] for d in listed["devices"]} == {"old phone": "active", "Chan's tablet": "active"}

    # Revoking: the new phone revokes the old one; its token is refused by every service within seconds.
    old_token = await old.device_token()
    reads = {
        "gateway /v1/devices": platform.gateway + "/v1/devices",
        "gateway /v1/inbox": platform.gateway + "/v1/inbox",
        "auth /v1/devices": direct(platform, "auth") + "/v1/devices",
        "notify /v1/inbox": direct(platform, "notify") + "/v1/inbox",
        "formfill /v1/consents": direct(platform, "formfill") + "/v1/consents",
    }
    assert set((await statuses(old_token, reads, old)).values()) == {200}
    await new.revoke(old.profile.device_id)
    since = time.monotonic()

    async def all_refused():
        return set((await statuses(old_token, reads, old)).values()) == {401}

    await eventually(all_refused, timeout_s=WITHIN_S, interval_s=0.05)
    print(f"revoked phone's token refused everywhere {time.monotonic() - since:.2f} s after the revocation answered")
    with pytest.raises(AppError) as no_token:
        await old.device_token()
    assert no_token.value.status == 401 and no_token.value.problem["type"].endswith("/device-inactive")
    # The other phone goes on: its token everywhere, and a login with the same sub.
    assert set((await statuses(await new.device_token(), reads, new)).values()) == {200}
    tokens, _ = await login(platform, metadata, rp, new)
    assert claims_of(tokens["id_token"])["sub"] == sub


async def test_wrong_reused_and_guessed_codes_and_another_citizens_phone_bind_nothing(platform, tmp_path):
    chan = await citizen(platform, tmp_path, "chan")
    lee = await citizen(platform, tmp_path, "lee")
    new = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json")
    started = await new.start_pairing("chan's tablet")

    # A wrong code: refused, with the tries the account has left.
    with pytest.raises(AppError) as wrong:
        await chan.claim_pairing("ZZZZ-ZZZZ")
    assert wrong.value.status == 400 and wrong.value.problem["type"].endswith("/invalid-pairing-code")
    assert wrong.value.problem["attempts_left"] == 4

    # Chan enters the right code: the prompt is on Chan's queue only; Lee's phone can neither decide it nor take the
    # code over.
    claimed = await chan.claim_pairing(started["code"])
    prompt = await chan.show(claimed["approval_id"])
    assert prompt["action"] == "add_device" and prompt["details"]["key_thumbprint"] == started["key_thumbprint"]
    with pytest.raises(AppError) as not_lees:
        await lee.decide(claimed["approval_id"], "approve", prompt=prompt)
    assert not_lees.value.status == 404
    with pytest.raises(AppError) as reused:
        await lee.claim_pairing(started["code"])
    assert reused.value.status == 400 and reused.value.problem["type"].endswith("/invalid-pairing-code")
    assert (await new.pairing_status())["status"] == "claimed"

    # Lee guessing codes is cut off after five wrong ones (one was spent above), through the gateway.
    answers = []
    for guess in ("ZZZZ-ZZZY", "ZZZZ-ZZZX", "ZZZZ-ZZZW", "ZZZZ-ZZZV", "ZZZZ-ZZZU"):
        with pytest.raises(AppError) as refused:
            await lee.claim_pairing(guess)
        answers.append(refused.value.status)
    assert answers == [400, 400, 400, 400, 429]

    await chan.approve(claimed["approval_id"])
    bound = await new.finish_pairing(timeout_s=10)
    assert bound["status"] == "bound" and bound["account_id"] == chan.profile.account_id
    assert [d["name"] for d in (await lee.devices())["devices"]] == ["lee"]
    # Used: the code binds nothing more.
    with pytest.raises(AppError) as used:
        await chan.claim_pairing(started["code"])
    assert used.value.status == 400


def cli(platform, profile, *args: str) -> subprocess.CompletedProcess:
    """The citizen app's command line, as a person runs it."""
    return subprocess.run(
        [sys.executable, "-m", "clients.citizen_app", "--profile", str(profile), "--gateway", platform.gateway, *args],
        env=platform.env(), capture_output=True, text=True, timeout=60,
    )


async def test_the_command_line_adds_names_and_lists_a_phone(platform, tmp_path):
    old = await citizen(platform, tmp_path, "old phone")
    new_profile = tmp_path / "cli-new.json"
    started = cli(platform, new_profile, "pair-start", "--device-name", "cli tablet", "--no-pin")
    assert started.returncode == 0, started.stderr
    code = json.loads(started.stdout)["code"]
    approved = cli(platform, tmp_path / "old phone.json", "pair-approve", code)
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "approved", approved.stderr
    waited = cli(platform, new_profile, "pair-wait", "--timeout", "10")
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "bound", waited.stderr
    device_id = json.loads(waited.stdout)["device_id"]
    renamed = cli(platform, new_profile, "rename", device_id, "kitchen tablet")
    assert renamed.returncode == 0 and json.loads(renamed.stdout)["name"] == "kitchen tablet", renamed.stderr
    listed = json.loads(cli(platform, new_profile, "devices").stdout)
    assert listed["current_device_id"] == device_id
    assert {d["name"] for d in listed["devices"]} == {"old phone", "kitchen tablet"}
    assert old.profile.account_id == json.loads(waited.stdout)["account_id"]
    reused = cli(platform, tmp_path / "old phone.json", "pair-approve", code)
    assert reused.returncode == 1 and json.loads(reused.stderr)["status"] == 400


async def test_a_new_phone_waiting_for_its_pairing_rides_out_a_crash_of_auth(platform, tmp_path):
    # The new phone's question is held by auth (?wait=) for most of a pairing's minutes, so a crash of auth nearly
    # always finds one in flight: the gateway answers 503 (the retry it makes for a GET finds nothing listening) and
    # the phone asks again after its Retry-After — the pairing lives in the database, not in the process that died.
    old = await citizen(platform, tmp_path, "old phone")
    new = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json")
    started = await new.start_pairing("tablet")
    waiting = asyncio.ensure_future(new.finish_pairing(timeout_s=120))
    await eventually(lambda: held_requests(platform, "auth") == 1 or waiting.done(), timeout_s=10)
    assert not waiting.done()

    platform.stack.crash("auth")
    await asyncio.to_thread(platform.stack.up_services, 60)  # as `make up` does: start what is down, await /readyz
    # The gateway's circuit for auth opened at the crash: the old phone's calls pass once its probe closes it.
    pairing_url = f"{platform.gateway}/v1/devices/pairings/{started['pairing_id']}"
    await eventually(lambda: requests.get(pairing_url, timeout=10).status_code == 200, timeout_s=30, interval_s=0.5)
    assert not waiting.done()  # the new phone is still asking, not given up
    approved = await old.approve_pairing(started["code"], key_thumbprint=started["key_thumbprint"])
    assert approved["status"] == "approved"
    status = await asyncio.wait_for(waiting, 60)
    assert status["status"] == "bound" and status["account_id"] == old.profile.account_id
    assert new.profile.device_id == status["device_id"]
    assert (await new.devices())["current_device_id"] == status["device_id"]

    # Auth took its partitions and its outbox back (the dead process's leases lapsed): the binding's event is on the
    # broker, and auth consumes the prompts of formfill and signing again — as the tests after this one expect.
    async def device_added_published():
        return [m for m in await all_messages(platform.infra.kafka_bootstrap, [IDENTITY.name])
                if json.loads(m.value)["type"] == "identity.device_added" and status["device_id"] in m.value.decode()]

    await eventually(device_added_published, timeout_s=30, interval_s=0.5)
    await eventually(lambda: any(f'topic="{APPROVAL_REQUESTED.name}"' in line
                                 for line in samples(platform, "auth", "harbour_consumer_lag")), timeout_s=30, interval_s=0.5)

"""A citizen's account over the years (issue 18): a lost phone replaced at a kiosk, basic upgraded to plus.

Everything goes through the gateway with the citizen app library as the phones and the kiosk, against the
whole stack: auth, formfill, notify and signing each refuse a revoked device's token by themselves (the
revocations topic), notify puts the security alert in the citizen's inbox, and relying parties keep the
citizen's pairwise `sub`.
"""

from __future__ import annotations

import json
import time
import uuid

import aiohttp
import pytest
import requests

from clients.citizen_app import CitizenApp, Profile
from clients.citizen_app.app import AppError
from libs.events import agency_topic
from services.auth.oidc.tokens import ACR_BASIC, ACR_PLUS

from ..support.broker import all_messages
from ..support.calls import device_auth
from ..support.database import mongo
from ..support.oidc import (REDIRECT, app_link_of, authorize_url, claims_of, login, register, status_url_of,
                            token_request)
from ..support.operator import admin, operator
from ..support.people import identity, random_hkid, selfie
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
# The revocations topic's promise is 2 s (docs/api.md); a busy shared machine gets some slack.
WITHIN_S = 5.0


def direct(platform, service: str) -> str:
    return platform.stack.config.service_url(service)


async def status_with(token: str, url: str, app=None) -> int:
    """`app`: a device token of that citizen app, presented as the app does (DPoP, its device key)."""
    headers = device_auth(app, token, "GET", url) if app is not None else {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url, headers=headers) as response:
            return response.status


async def statuses(token: str, urls: dict[str, str], app=None) -> dict[str, int]:
    return {name: await status_with(token, url, app) for name, url in urls.items()}


def registered_by_operator(platform, **metadata) -> dict:
    """A client only an operator may register (a shared pairwise sector): its registration answer."""
    response = requests.post(platform.gateway + "/v1/clients", json=metadata, headers=operator(platform), timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def flat_png() -> bytes:
    """A decodable image with no detail: the face matcher refuses it (low-quality), as a wrong face would be."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (160, 160), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


async def account_state(platform, account_id: str) -> dict:
    """What a refused replacement must leave alone: the account and its devices as stored, and auth's outbox for it."""
    async with mongo(platform.infra.mongo_uri) as client:
        db = client[platform.database("auth")]
        account = await db["accounts"].find_one({"_id": account_id})
        devices = await db["devices"].find({"account_id": account_id}).sort("_id", 1).to_list()
        outbox = await db["outbox"].count_documents({"key": account_id})
    return {"account": account, "devices": devices, "outbox": outbox}


async def outbox_events(platform, account_id: str, event_type: str) -> list[dict]:
    async with mongo(platform.infra.mongo_uri) as client:
        docs = await client[platform.database("auth")]["outbox"].find({"key": account_id, "type": event_type}).to_list()
    return [json.loads(doc["value"]) for doc in docs]


async def test_a_lost_phone_replaced_at_a_kiosk_keeps_the_account_and_stops_the_old_phone(platform, kiosk, metadata, tmp_path):
    person = identity()
    kiosk_app = CitizenApp(Profile(gateway_url=platform.gateway))
    enrolled = await kiosk_app.enrol(person, selfie(), kiosk=kiosk)
    account_id = enrolled["account_id"]
    old = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "old.json")
    await old.activate(account_id, enrolled["activation_code"], "old phone")
    rp = register(platform, client_name="Harbour Water Supplies", scope="openid")
    tokens, _ = await login(platform, metadata, rp, old)
    sub_before = claims_of(tokens["id_token"])["sub"]

    # A browser the old phone signed in (the two-device journey): it has a session at the issuer for prompt=none.
    browser = requests.Session()
    page = browser.get(authorize_url(metadata, rp["client_id"])[0], timeout=10).text
    await old.open_link(app_link_of(page))
    done = browser.get(browser.get(status_url_of(page), timeout=10).json()["redirect_to"], allow_redirects=False, timeout=10)
    assert done.status_code == 303 and done.headers["Location"].startswith(REDIRECT)
    silent_url = authorize_url(metadata, rp["client_id"], prompt="none")[0]
    silent = browser.get(silent_url, allow_redirects=False, timeout=10)
    assert silent.status_code == 303 and "code=" in silent.headers["Location"]

    old_token = await old.device_token()
    reads = {
        "gateway /v1/inbox": platform.gateway + "/v1/inbox",
        "gateway /v1/devices": platform.gateway + "/v1/devices",
        "auth /v1/devices": direct(platform, "auth") + "/v1/devices",
        "notify /v1/inbox": direct(platform, "notify") + "/v1/inbox",
        "formfill /v1/consents": direct(platform, "formfill") + "/v1/consents",
    }
    assert set((await statuses(old_token, reads, old)).values()) == {200}

    replaced = await kiosk_app.replace_at_kiosk(person, selfie(), kiosk=kiosk)
    since = time.monotonic()
    assert replaced["account_id"] == account_id and replaced["state"] == "active" and replaced["assurance"] == "plus"
    assert replaced["devices_revoked"] == 1 and replaced["upgraded"] is False
    assert replaced["activation_code"] != enrolled["activation_code"]

    # The old phone's token, issued before and valid for 10 minutes, is refused by every service within seconds.
    async def all_refused():
        return set((await statuses(old_token, reads, old)).values()) == {401}

    await eventually(all_refused, timeout_s=WITHIN_S, interval_s=0.05)
    refused_after = time.monotonic() - since
    print(f"old device token refused everywhere {refused_after:.2f} s after the replacement answered")
    # That browser's session ended with the replacement: a silent login needs the new phone now.
    silent = browser.get(silent_url, allow_redirects=False, timeout=10)
    assert silent.status_code == 303 and "error=login_required" in silent.headers["Location"]
    with pytest.raises(AppError) as no_new_token:
        await old.device_token()
    assert no_new_token.value.status == 401 and no_new_token.value.problem["type"].endswith("/device-inactive")

    # The new phone activates through the normal path with the new code; the same account, the same sub.
    new = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json")
    activated = await new.activate(account_id, replaced["activation_code"], "new phone")
    assert activated["account_id"] == account_id
    devices = {d["name"]: d["status"] for d in (await new._as_device("GET", "/v1/devices"))["devices"]}
    assert devices == {"old phone": "revoked", "new phone": "active"}
    tokens, _ = await login(platform, metadata, rp, new)
    claims = claims_of(tokens["id_token"])
    assert claims["sub"] == sub_before and claims["acr"] == ACR_PLUS

    # The code is single use, like the first one.
    with pytest.raises(AppError) as again:
        await CitizenApp(Profile(gateway_url=platform.gateway)).activate(account_id, replaced["activation_code"])
    assert again.value.status == 400 and again.value.problem["type"].endswith("/used")

    # The security alert reached the citizen's inbox (in the enrolled language), read on the new phone.
    async def alerted():
        return [m for m in await new.inbox() if m["kind"] == "platform" and m["subject"] == "已在自助服務站更換手機"]

    [alert] = await eventually(alerted, timeout_s=20)
    assert alert["priority"] == "high" and "1 部裝置" in alert["body"]
    # The events of the one transaction: identity (notify's alert), audit, the device's revocation.
    [changed] = await outbox_events(platform, account_id, "identity.devices_replaced")
    assert changed["data"] == {"account_id": account_id, "devices_revoked": 1, "reason": "replaced at a kiosk"}
    [audit] = [e for e in await outbox_events(platform, account_id, "audit.recorded") if e["data"]["action"] == "identity.replace"]
    assert audit["data"]["actor"] == kiosk[0]


async def test_a_refused_replacement_changes_nothing(platform, kiosk, tmp_path):
    person = identity()
    kiosk_app = CitizenApp(Profile(gateway_url=platform.gateway))
    enrolled = await kiosk_app.enrol(person, selfie(), kiosk=kiosk)
    account_id = enrolled["account_id"]
    phone = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "phone.json")
    await phone.activate(account_id, enrolled["activation_code"])
    before = await account_state(platform, account_id)

    async def refused(body: dict, picture: bytes, *, credentials=kiosk) -> AppError:
        with pytest.raises(AppError) as caught:
            await kiosk_app.replace_at_kiosk(body, picture, kiosk=credentials)
        return caught.value

    wrong_face = await refused(person, flat_png())
    assert wrong_face.status == 422 and wrong_face.problem["type"].endswith("/selfie-rejected")
    assert wrong_face.problem["errors"][0]["code"] == "low-quality"
    unknown_card = await refused({**person, "id_number": random_hkid()}, selfie())
    assert unknown_card.status == 404 and unknown_card.problem["type"].endswith("/not-enrolled")
    assert set(unknown_card.problem) == {"type", "title", "status", "detail", "instance"}
    other_person = await refused({**person, "date_of_birth": "1960-02-29"}, selfie())
    assert other_person.status == 422 and other_person.problem["type"].endswith("/proofing-failed")
    no_kiosk = await refused(person, selfie(), credentials=("kiosk-nobody", "wrong"))
    assert no_kiosk.status == 401
    async with aiohttp.ClientSession() as session:  # the sandbox's self-registration does not reach a replacement
        async with session.post(platform.gateway + "/v1/enrolments/replacements", json={}) as response:
            assert response.status == 401

    assert await account_state(platform, account_id) == before
    assert (await phone.device_token()) and (await phone.pending()) == []  # the phone still works
    # Contact data is not compared: a new phone number with the same card-printed data is the same citizen.
    replaced = await kiosk_app.replace_at_kiosk({**person, "phone": "+85290000000", "name_en": person["name_en"].lower()},
                                                selfie(), kiosk=kiosk)
    assert replaced["account_id"] == account_id and replaced["devices_revoked"] == 1


async def test_a_basic_identity_upgraded_at_a_kiosk_logs_in_as_plus_with_the_same_sub(platform, kiosk, metadata, tmp_path):
    person = identity(language="en")
    registered = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, selfie())  # sandbox: basic
    assert registered["assurance"] == "basic"
    phone = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "basic.json")
    await phone.activate(registered["account_id"], registered["activation_code"])
    # Two clients of one authority share a pairwise sector (an operator registers that); the citizen logs in to one.
    sector = f"https://housing-{uuid.uuid4().hex[:8]}.example.hk/sector.json"
    subscriber, sibling = (registered_by_operator(platform, client_name=name, agency_events=True, scope="openid",
                                                  redirect_uris=[REDIRECT], sector_identifier_uri=sector)
                           for name in ("Harbour Housing Authority", "Harbour Housing Lettings"))
    other = register(platform, client_name="Harbour Parks Office", agency_events=True, scope="openid")  # never logged in to
    tokens, _ = await login(platform, metadata, subscriber, phone)
    claims = claims_of(tokens["id_token"])
    assert claims["acr"] == ACR_BASIC
    sub = claims["sub"]

    upgraded = await phone.upgrade_at_kiosk(person, selfie(), kiosk=kiosk)
    assert upgraded == {"account_id": registered["account_id"], "state": "active", "assurance": "plus", "upgraded": True}

    # The same phone, the next login: acr plus, the same sub.
    tokens, _ = await login(platform, metadata, subscriber, phone)
    claims = claims_of(tokens["id_token"])
    assert claims["acr"] == ACR_PLUS and claims["sub"] == sub

    # The relying party's own topic: the new level, with its own sub (never the account id).
    async def on_topic_of(client_id: str):
        messages = await all_messages(platform.infra.kafka_bootstrap, [agency_topic(client_id)])
        return [json.loads(m.value) for m in messages if json.loads(m.value)["type"] == "identity.assurance_changed"]

    for client in (subscriber, sibling):  # the sibling shares the sector, so the sub: the citizen is known to it as one
        [event] = await eventually(lambda: on_topic_of(client["client_id"]), timeout_s=20)
        assert event["subject"] == sub
        assert event["data"] == {"client_id": client["client_id"], "sub": sub, "acr": ACR_PLUS, "previous_acr": ACR_BASIC,
                                 "assurance_level": "plus"}
        assert registered["account_id"] not in json.dumps(event)
    # A relying party the citizen never logged in to learns nothing.
    async with mongo(platform.infra.mongo_uri) as client:
        assert await client[platform.database("auth")]["outbox"].count_documents({"topic": agency_topic(other["client_id"])}) == 0

    # signing (who may sign) and formfill keep the assurance from the identity topic.
    async def projected():
        async with mongo(platform.infra.mongo_uri) as client:
            signing = await client[platform.database("signing")]["citizens"].find_one({"_id": registered["account_id"]})
            vault = await client[platform.database("formfill")]["vault"].find_one({"_id": registered["account_id"]})
        return signing and vault and signing["assurance"] == "plus" and vault["assurance"] == "plus"

    await eventually(projected, timeout_s=20)

    # The citizen is told, and a second upgrade changes nothing.
    async def alerted():
        return [m for m in await phone.inbox() if m["subject"] == "Your identity was verified in person"]

    await eventually(alerted, timeout_s=20)
    again = await phone.upgrade_at_kiosk(person, selfie(), kiosk=kiosk)
    assert again["upgraded"] is False
    assert len(await outbox_events(platform, registered["account_id"], "identity.assurance_changed")) == 1


async def test_a_pending_account_gets_a_new_code_and_a_suspended_one_is_refused(platform, kiosk, tmp_path):
    """The kiosk slip lost before activation: a replacement is the new visit; the old code is dead, the new one binds."""
    person = identity()
    kiosk_app = CitizenApp(Profile(gateway_url=platform.gateway))
    enrolled = await kiosk_app.enrol(person, selfie(), kiosk=kiosk)
    account_id = enrolled["account_id"]
    replaced = await kiosk_app.replace_at_kiosk(person, selfie(), kiosk=kiosk)
    assert replaced["state"] == "pending" and replaced["devices_revoked"] == 0
    phone = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "phone.json")
    with pytest.raises(AppError) as old_code:
        await phone.activate(account_id, enrolled["activation_code"])
    assert old_code.value.status == 400 and old_code.value.problem["type"].endswith("/invalid-activation")
    await phone.activate(account_id, replaced["activation_code"])
    assert (await phone._as_device("GET", "/v1/devices"))["devices"][0]["status"] == "active"

    # Suspended by an operator: a kiosk does not undo it, and nothing changes.
    assert admin(platform, "set-state", account_id, "suspended", "--reason", "reported stolen").returncode == 0
    before = await account_state(platform, account_id)
    with pytest.raises(AppError) as suspended:
        await kiosk_app.replace_at_kiosk(person, selfie(), kiosk=kiosk)
    assert suspended.value.status == 403 and suspended.value.problem["type"].endswith("/account-inactive")
    with pytest.raises(AppError) as not_upgraded:
        await kiosk_app.upgrade_at_kiosk(person, selfie(), kiosk=kiosk)
    assert not_upgraded.value.status == 403
    assert await account_state(platform, account_id) == before


async def test_a_lost_phone_replaced_at_a_kiosk_ends_what_relying_parties_got_through_it(platform, kiosk, metadata, tmp_path):
    """A relying party's refresh token (and the access token issued with it) came from an approval on the lost phone:
    whoever holds the phone could go on through that relying party for months. The replacement revokes them."""
    person = identity()
    kiosk_app = CitizenApp(Profile(gateway_url=platform.gateway))
    enrolled = await kiosk_app.enrol(person, selfie(), kiosk=kiosk)
    old = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "old.json")
    await old.activate(enrolled["account_id"], enrolled["activation_code"], "old phone")
    portal = registered_by_operator(platform, client_name="Long-lived Portal", redirect_uris=[REDIRECT],
                                    scope="openid offline_access")
    tokens, _ = await login(platform, metadata, portal, old, scope="openid offline_access")
    refreshed = token_request(metadata, portal, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    access, refresh = refreshed.json()["access_token"], refreshed.json()["refresh_token"]
    userinfo = metadata["userinfo_endpoint"]
    assert await status_with(access, userinfo) == 200

    replaced = await kiosk_app.replace_at_kiosk(person, selfie(), kiosk=kiosk)
    assert replaced["devices_revoked"] == 1

    after = token_request(metadata, portal, grant_type="refresh_token", refresh_token=refresh)
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"  # old code: 200, a new pair
    assert await status_with(access, userinfo) == 401  # issued with it, still within its 10 minutes: revoked too

    # The new phone's login is a new grant, untouched.
    new = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "new.json")
    await new.activate(enrolled["account_id"], replaced["activation_code"], "new phone")
    tokens, _ = await login(platform, metadata, portal, new, scope="openid offline_access")
    again = token_request(metadata, portal, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert again.status_code == 200, again.text

"""Closing an account (issue 18): by the citizen from the app, approved on the phone, or by an operator with a reason.

Against the whole stack through the gateway: the device token is refused
everywhere within seconds, the relying party's refresh token is refused, the
relying party's topic says so with its own `sub`, the signing certificate is
on the CRL and its HSM key destroyed, the inbox and preferences are gone, and
a dump of every service database holds nothing of the citizen in the clear
nor in any sealed blob the services' own keys open.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest
import requests
from asn1crypto import crl as asn1_crl

from clients.citizen_app import CitizenApp, Profile
from clients.citizen_app.app import AppError
from libs.events import agency_topic

from ..support.broker import all_messages
from ..support.calls import device_auth, bearer
from ..support.database import mongo
from ..support.dump import sweep
from ..support.formfill import FIELDS, created, prompt_for as formfill_prompt, wait_for_status
from ..support.oidc import claims_of, login, logged_in_token, register, token_request
from ..support.operator import admin
from ..support.people import identity, selfie
from ..support.polling import eventually
from ..support.signing import create as create_signing, crl_der, prompt_for as signing_prompt, signing_rp, wait_for

pytestmark = pytest.mark.e2e
WITHIN_S = 5.0  # the revocations topic's promise is 2 s (docs/api.md); a busy shared machine gets some slack


def direct(platform, service: str) -> str:
    return platform.stack.config.service_url(service)


def reads(platform) -> dict[str, str]:
    return {
        "gateway /v1/inbox": platform.gateway + "/v1/inbox",
        "gateway /v1/devices": platform.gateway + "/v1/devices",
        "auth /v1/devices": direct(platform, "auth") + "/v1/devices",
        "notify /v1/inbox": direct(platform, "notify") + "/v1/inbox",
        "formfill /v1/consents": direct(platform, "formfill") + "/v1/consents",
    }


def statuses(token: str, urls: dict[str, str], app) -> dict[str, int]:
    return {name: requests.get(url, headers=device_auth(app, token, "GET", url), timeout=10).status_code
            for name, url in urls.items()}


def person_values(person: dict) -> list[str]:
    card = person["id_number"]
    return [card, card.replace("(", "").replace(")", ""), person["name_en"], person["phone"], person["email"], person["address"]]


def unique_person(**overrides) -> dict:
    tag = uuid.uuid4().hex[:8]
    return identity(address=f"Flat {tag.upper()}, 8 Closure Road, Wan Chai, Hong Kong", **overrides)


async def enrolled(platform, kiosk, tmp_path, person: dict, name: str) -> CitizenApp:
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, selfie(), kiosk=kiosk)
    app = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / f"{name}.json")
    await app.activate(enrolment["account_id"], enrolment["activation_code"], name)
    return app


async def auth_doc(platform, collection: str, query: dict) -> dict | None:
    async with mongo(platform.infra.mongo_uri) as client:
        return await client[platform.database("auth")][collection].find_one(query)


async def audit_records(platform, account_id: str, action: str) -> list[dict]:
    async with mongo(platform.infra.mongo_uri) as client:
        docs = await client[platform.database("auth")]["outbox"].find({"topic": "audit.events"}).to_list()
    events = [json.loads(doc["value"]) for doc in docs]
    return [e for e in events if e["subject"] == account_id and e["data"]["action"] == action]


async def test_a_citizen_closes_the_account_from_the_app_and_nothing_of_them_opens_afterwards(platform, kiosk, metadata, tmp_path):
    person = unique_person()
    phone = await enrolled(platform, kiosk, tmp_path, person, "phone")
    account_id = phone.profile.account_id
    await phone.set_preferences(channels=["inbox", "push", "email", "sms"], email=person["email"], phone=person["phone"])

    # A relying party with offline access that reads its own topic; the citizen logs in to it.
    agency = register(platform, client_name="Harbour Housing Authority", agency_events=True)
    tokens, _ = await login(platform, metadata, agency, phone, scope="openid offline_access")
    sub = claims_of(tokens["id_token"])["sub"]
    assert token_request(metadata, agency, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).status_code == 200
    tokens, _ = await login(platform, metadata, agency, phone, scope="openid offline_access")

    # Form filling: the vault released fields once (a receipt, a result waiting to be read).
    water = register(platform, client_name="Harbour Water", scope="openid formfill", formfill_fields=FIELDS)
    formfill_token = await logged_in_token(metadata, water, phone, "openid formfill")
    asked = await created(platform, formfill_token, [("name_en", True), ("email", True), ("address", True)])
    await phone.approve((await formfill_prompt(phone, asked["request_id"]))["approval_id"])
    await wait_for_status(platform, formfill_token, asked["request_id"], "approved")

    # Signing: the plus citizen's certificate and HSM key, issued with the first signature.
    office = signing_rp(platform, "Harbour Lands Office")
    sign_token = await logged_in_token(metadata, office, phone, "openid sign")
    signing = await create_signing(platform, sign_token, json={"document_name": "lease.txt", "sha256": hashlib.sha256(b"lease").hexdigest()})
    await phone.approve((await signing_prompt(phone, signing["request_id"]))["approval_id"])
    serial = (await wait_for(platform, sign_token, signing["request_id"], "signed"))["certificate_serial"]
    await eventually(lambda: phone.inbox(), timeout_s=20)  # platform messages (new device, new services) arrived

    # The sweep finds the citizen before the closure: the vault opens with formfill's keys (the check can see).
    before = await sweep(platform, person_values(person))
    assert any(".vault/" in where and "opened by formfill" in where for where in before.found), before.found[:5]

    # Another citizen's device can neither see nor decide this account's closure prompt; a denial changes nothing.
    other = await enrolled(platform, kiosk, tmp_path, unique_person(), "other")
    asked_close = await phone.request_closure()
    assert asked_close["status"] == "pending"
    for attempt in (other.show(asked_close["approval_id"]), other.approve(asked_close["approval_id"])):
        with pytest.raises(AppError) as not_theirs:
            await attempt
        assert not_theirs.value.status == 404
    denied = await phone.deny(asked_close["approval_id"])
    assert denied["status"] == "denied" and "account_state" not in denied
    unapproved = await phone.request_closure()  # asked, never decided
    device_token = await phone.device_token()
    assert set(statuses(device_token, reads(platform), phone).values()) == {200}
    assert (await auth_doc(platform, "accounts", {"_id": account_id}))["state"] == "active"
    assert unapproved["approval_id"] in {p["approval_id"] for p in await phone.pending()}

    # The citizen closes it: asked, shown, approved device-signed.
    closed = await phone.close_account()
    since = time.monotonic()
    assert closed["status"] == "approved" and closed["account_state"] == "closed"

    async def all_refused():
        return set(statuses(device_token, reads(platform), phone).values()) == {401}

    await eventually(all_refused, timeout_s=WITHIN_S, interval_s=0.05)
    print(f"device token refused everywhere {time.monotonic() - since:.2f} s after the closure answered")
    with pytest.raises(AppError) as no_token:
        await phone.device_token()
    assert no_token.value.status in (401, 403)
    # The relying party: its refresh token is refused, its access token too (userinfo).
    refreshed = token_request(metadata, agency, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    userinfo = requests.get(metadata["userinfo_endpoint"], headers=bearer(tokens["access_token"]), timeout=10)
    assert userinfo.status_code == 401
    assert (await auth_doc(platform, "refresh_tokens", {"grant.account_id": account_id, "status": "active"})) is None

    # The relying party's own topic: identity.account_closed with its own sub, never the account id.
    async def closed_on_topic():
        messages = await all_messages(platform.infra.kafka_bootstrap, [agency_topic(agency["client_id"])])
        return [json.loads(m.value) for m in messages if json.loads(m.value)["type"] == "identity.account_closed"]

    [event] = await eventually(closed_on_topic, timeout_s=20)
    assert event["subject"] == sub and event["data"]["sub"] == sub and event["data"]["client_id"] == agency["client_id"]
    assert account_id not in json.dumps(event)

    # Signing: the certificate is on the CRL (cessation of operation), its HSM key destroyed.
    def on_crl():
        listed = asn1_crl.CertificateList.load(crl_der(platform))["tbs_cert_list"]["revoked_certificates"]
        return next((e for e in listed if e["user_certificate"].native == int(serial, 16)), None)

    entry = await eventually(on_crl, timeout_s=20)
    assert entry["crl_entry_extensions"][0]["extn_value"].native == "cessation_of_operation"

    async def shredded_everywhere():
        async with mongo(platform.infra.mongo_uri) as client:
            cert = await client[platform.database("signing")]["certificates"].find_one({"_id": serial})
            vault = await client[platform.database("formfill")]["vault"].find_one({"_id": account_id})
            notify = client[platform.database("notify")]
            inbox = await notify["inbox"].count_documents({"account_id": account_id})
            prefs = await notify["preferences"].count_documents({"_id": account_id})
        return (cert.get("key_destroyed_at") and cert["status"] == "revoked" and vault.get("shredded_at")
                and "sealed" not in vault and inbox == 0 and prefs == 0)

    await eventually(shredded_everywhere, timeout_s=20)

    # The dump: nothing of the citizen in the clear, nothing of them in whatever the services' keys open.
    after = await sweep(platform, person_values(person))
    assert after.found == [], after.found[:10]
    assert after.opened > 0  # the other citizens' records still open: the keys were right

    # One transaction's record: the audit says who (the deciding device), by whom and what went.
    [audit] = await audit_records(platform, account_id, "identity.close")
    assert audit["data"]["actor"] == phone.profile.device_id and audit["data"]["by"] == "citizen"
    assert audit["data"]["devices_revoked"] == 1 and audit["data"]["outbox_events_deleted"] >= 1
    async with mongo(platform.infra.mongo_uri) as client:
        assert await client[platform.database("auth")]["outbox"].count_documents({"key": account_id, "type": "identity.enrolled"}) == 0
    account = await auth_doc(platform, "accounts", {"_id": account_id})
    assert account["state"] == "closed" and account["card_hash"] == f"closed:{account_id}" and "identity_hash" not in account

    # Re-enrolment: the same card is a new account, with a new pairwise sub at the same relying party.
    again = await enrolled(platform, kiosk, tmp_path, person, "new-phone")
    assert again.profile.account_id != account_id
    new_tokens, _ = await login(platform, metadata, agency, again, scope="openid")
    assert claims_of(new_tokens["id_token"])["sub"] != sub


async def test_an_operator_closes_an_account_with_a_reason(platform, kiosk, tmp_path):
    person = unique_person()
    phone = await enrolled(platform, kiosk, tmp_path, person, "phone")
    account_id = phone.profile.account_id
    device_token = await phone.device_token()

    missing = admin(platform, "close-account", account_id, "--reason", "deceased (death certificate D-123)", operator=None)
    assert missing.returncode != 0  # an operator's name is required: the audit record names who closed it
    done = admin(platform, "close-account", account_id, "--reason", "deceased (death certificate D-123)", "--operator", "wong.k")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["state"] == "closed" and answer["devices_revoked"] == 1

    async def refused():
        return set(statuses(device_token, reads(platform), phone).values()) == {401}

    await eventually(refused, timeout_s=WITHIN_S, interval_s=0.05)
    [audit] = await audit_records(platform, account_id, "identity.close")
    assert audit["data"]["actor"] == "operator:wong.k" and audit["data"]["by"] == "operator"
    assert audit["data"]["reason"] == "deceased (death certificate D-123)"

    async def vault_shredded():
        async with mongo(platform.infra.mongo_uri) as client:
            vault = await client[platform.database("formfill")]["vault"].find_one({"_id": account_id})
        return vault and vault.get("shredded_at") and "sealed" not in vault

    await eventually(vault_shredded, timeout_s=20)
    # Closed is for good: a second closure and a state change are refused, and change nothing.
    again = admin(platform, "close-account", account_id, "--reason", "again", "--operator", "wong.k")
    assert again.returncode == 1 and "closed" in again.stderr
    reinstated = admin(platform, "set-state", account_id, "active", "--reason", "undo")
    assert reinstated.returncode == 1
    assert (await auth_doc(platform, "accounts", {"_id": account_id}))["state"] == "closed"
    unknown = admin(platform, "close-account", "acct-nobody", "--reason", "x", "--operator", "wong.k")
    assert unknown.returncode == 1

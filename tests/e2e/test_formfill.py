"""Form filling end to end: logged-in and anonymous journeys, the relying party checking with jwcrypto."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from jwcrypto import jwe as jwcrypto_jwe

from clients.citizen_app import CitizenApp
from libs.crypto import FieldCipher, Keyring, new_key_value
from libs.events import CloudEvent, agency_topic

from ..support.broker import all_messages
from ..support.calls import device_auth, refusal
from ..support.citizens import enrolled_app
from ..support.database import mongo, platform_documents
from ..support.formfill import FIELDS, ask, created, prompt_for, result_of, rp_with_key, verified_claims, wait_for_status
from ..support.oidc import client_token, logged_in_token, register
from ..support.people import identity
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
SCOPE = "openid formfill"  # what the relying party logs the citizen in with
PEOPLE: list[dict] = []  # every identity this module enrolled, looked for in the final sweep


async def citizen(platform, kiosk, tmp_path, name="phone") -> tuple[CitizenApp, dict]:
    """An enrolled citizen with a phone, whose identity the final sweep looks for: (the app, the identity)."""
    person = identity()
    PEOPLE.append(person)
    return await enrolled_app(platform, kiosk, tmp_path, name, person=person), person


async def test_logged_in_journey_encrypted_to_the_client_with_an_optional_field_dropped(platform, kiosk, metadata, tmp_path):
    app, person = await citizen(platform, kiosk, tmp_path)
    rp, rp_key = rp_with_key(platform)
    token = await logged_in_token(metadata, rp, app, SCOPE)
    request = await created(platform, token, [("name_en", True), ("email", True), ("phone", False)])
    assert "app_link" not in request  # the citizen is known from the token: no QR needed
    prompt = await prompt_for(app, request["request_id"])
    assert prompt["requester"]["client_name"] == "Harbour Water"
    assert prompt["details"] == {"required": ["name_en", "email"], "optional": ["phone"], "standing": False}
    await app.approve(prompt["approval_id"], selection=[])  # keep no optional field: phone is dropped
    done = await wait_for_status(platform, token, request["request_id"], "approved")
    assert done["released_fields"] == ["name_en", "email"]

    result = result_of(platform, token, request["request_id"])
    assert result.status_code == 200 and result.headers["Content-Type"].startswith("application/jose")
    envelope = jwcrypto_jwe.JWE()
    envelope.deserialize(result.text, key=rp_key)
    assert envelope.jose_header["alg"] == "ECDH-ES+A256KW" and envelope.jose_header["cty"] == "JWT"
    claims = verified_claims(platform, envelope.payload.decode())
    assert claims["fields"] == {"name_en": person["name_en"], "email": person["email"]}
    assert claims["aud"] == rp["client_id"] and claims["request_id"] == request["request_id"]
    assert claims["iss"] == platform.gateway + "/v1/formfill" and claims["sub"]
    refusal(result_of(platform, token, request["request_id"]), 410, "gone")  # released once


async def test_anonymous_journey_by_app_link_and_consents(platform, kiosk, metadata, tmp_path):
    app, person = await citizen(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Harbour Library", scope="openid formfill", formfill_fields=FIELDS,
                  agency_events=True)  # it reads its topic (below)
    token = client_token(metadata, rp, "formfill")
    request = await created(platform, token, [("name_en", True), ("address", False), ("phone", False)], standing=True)
    assert request["app_link"].startswith("harbourid://formfill?request=")
    opened = await app.open_link(request["app_link"], selection=["address"])
    assert opened["status"] == "approved"
    await wait_for_status(platform, token, request["request_id"], "approved")
    claims = verified_claims(platform, result_of(platform, token, request["request_id"]).text)
    assert claims["fields"] == {"name_en": person["name_en"], "address": person["address"]}

    listed = requests.get(platform.gateway + "/v1/consents",
                          headers=device_auth(app, await app.device_token(), "GET", platform.gateway + "/v1/consents"), timeout=10).json()
    [consent] = [c for c in listed["consents"] if c["request_id"] == request["request_id"]]
    assert consent["fields"] == ["name_en", "address"] and consent["standing"] and consent["status"] == "active"
    revoked = requests.delete(f"{platform.gateway}/v1/consents/{consent['receipt_id']}", timeout=10, headers=device_auth(
        app, await app.device_token(), "DELETE", f"{platform.gateway}/v1/consents/{consent['receipt_id']}"))
    assert revoked.status_code == 204

    async def agency_events() -> set[str]:
        messages = await all_messages(platform.infra.kafka_bootstrap, [agency_topic(rp["client_id"])])
        return {CloudEvent.from_json(m.value).type for m in messages}

    async def granted_and_revoked() -> bool:
        return await agency_events() == {"consent.granted", "consent.revoked"}

    await eventually(granted_and_revoked)


async def test_deny_unregistered_fields_and_unread_results(platform, kiosk, metadata, tmp_path):
    app, _ = await citizen(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Harbour Gas", scope="openid formfill", formfill_fields=["name_en"])
    token = await logged_in_token(metadata, rp, app, SCOPE)
    async def not_registered():
        response = ask(platform, token, [("name_en", True), ("address", True)])
        # (a 4xx Response is falsy: wrap it)
        return [response] if response.status_code == 403 else None

    [refused] = await eventually(not_registered, timeout_s=20)
    assert refusal(refused, 403, "field-not-registered")["fields"] == ["address"]

    denied = await created(platform, token, [("name_en", True)])
    prompt = await prompt_for(app, denied["request_id"])
    await app.deny(prompt["approval_id"])
    assert (await wait_for_status(platform, token, denied["request_id"], "denied"))["error"] == "access_denied"
    refusal(result_of(platform, token, denied["request_id"]), 403, "access_denied")

    unread = await created(platform, token, [("name_en", True)])
    prompt = await prompt_for(app, unread["request_id"])
    await app.approve(prompt["approval_id"])
    await wait_for_status(platform, token, unread["request_id"], "approved")
    # Never read: after the release lifetime (12 s on the test platform) it is gone.
    await eventually(lambda: result_of(platform, token, unread["request_id"]).status_code == 410, timeout_s=40, interval_s=1)
    refusal(result_of(platform, token, unread["request_id"]), 410, "gone")


async def test_rewrap_moves_every_record_to_the_new_key(platform, kiosk, tmp_path):
    app, _ = await citizen(platform, kiosk, tmp_path)
    # The citizen's vault record is written by formfill's consumer of identity.enrolled: awaited before the rotation,
    # or the running formfill (the old key still its current one) may write it while the rewrap runs.
    async with mongo(platform.infra.mongo_uri) as client:
        vault = client[platform.database("formfill")].vault
        await eventually(lambda: vault.find_one({"_id": app.profile.account_id, "sealed": {"$exists": True}}))
    env = platform.env()
    new = new_key_value("vault-2")
    rotated = {**env, "HARBOUR_FORMFILL_KEK": f"{new},{env['HARBOUR_FORMFILL_KEK']}"}
    ran = subprocess.run([sys.executable, "-m", "services.formfill.admin", "rewrap", "--operator", "test.operator",
                          "--reason", "KEK rotation test"], env=rotated, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["current_kid"] == "vault-2" and report["left_on_old_keys"] == 0 and report["rewrapped"] >= 1
    # The old key retired: the new one alone opens every record.
    only_new = FieldCipher(Keyring.from_env_value(new))
    async with mongo(platform.infra.mongo_uri) as client:
        records = await client[platform.database("formfill")].vault.find().to_list()
    # Closed accounts' records (other tests on the shared platform close some) were shredded: nothing to rewrap.
    sealed = [record for record in records if record.get("state") != "closed"]
    assert sealed and all("sealed" not in record for record in records if record.get("state") == "closed")
    for record in sealed:
        assert only_new.decrypt_record(record["sealed"], record_id=record["_id"])["name_en"]


async def test_no_personal_data_in_any_database_in_the_clear(platform):
    """After the journeys: every collection of every database of this platform, dumped."""
    assert PEOPLE
    databases = await platform_documents(platform)
    dumped = [raw for raws in databases.values() for raw in raws]
    assert len(databases) >= 4 and dumped
    for person in PEOPLE:
        card = person["id_number"]
        for value in (card, card.replace("(", "").replace(")", ""), person["name_en"], person["date_of_birth"],
                      person["phone"], person["email"], person["address"]):
            assert not any(value.encode() in raw for raw in dumped), "plaintext personal data in a database"

"""Form filling end to end: logged-in and anonymous journeys, the relying party checking with jwcrypto."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from clients.citizen_app import CitizenApp, Profile
from libs.crypto import FieldCipher, Keyring, new_key_value
from libs.events import CloudEvent, agency_topic
from libs.store import create_client

from ..integration.eventing import eventually
from .citizens import all_documents, all_messages, cli, identity, selfie
from .test_oidc import REDIRECT, app_link_of, authorize_url, register, token_request

pytestmark = pytest.mark.e2e
FIELDS = ["name_en", "date_of_birth", "email", "phone", "address"]
PEOPLE: list[dict] = []




async def citizen(platform, kiosk, tmp_path, name="phone") -> tuple[CitizenApp, dict]:
    person = identity()
    PEOPLE.append(person)
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, selfie(), kiosk=kiosk)
    app = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / f"{name}.json")
    await app.activate(enrolment["account_id"], enrolment["activation_code"], name)
    return app, person


def rp_with_key(platform) -> tuple[dict, jwcrypto_jwk.JWK]:
    key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    public = json.loads(key.export_public())
    rp = register(platform, client_name="Harbour Water", scope="openid formfill", formfill_fields=FIELDS, encryption_jwk=public)
    return rp, key


async def logged_in_token(platform, metadata, rp, app) -> str:
    url, verifier = authorize_url(metadata, rp["client_id"], scope="openid formfill")
    outcome = await app.open_link(app_link_of(requests.get(url, timeout=10).text))
    code = outcome["redirect_to"].split("code=")[1].split("&")[0]
    tokens = token_request(metadata, rp, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier).json()
    return tokens["access_token"]


def ask(platform, token: str, fields: list[tuple[str, bool]], purpose="Open a water account", **extra) -> requests.Response:
    body = {"fields": [{"name": n, "required": r} for n, r in fields], "purpose": purpose, **extra}
    return requests.post(platform.gateway + "/v1/formfill/requests", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)


async def created(platform, token, fields, **extra) -> dict:
    """POST the request, retrying while formfill has not yet heard of the client or citizen (409 + Retry-After)."""
    async def attempt():
        response = ask(platform, token, fields, **extra)
        assert response.status_code in (201, 409), response.text
        return response.json() if response.status_code == 201 else None

    return await eventually(attempt, timeout_s=20)


def status_of(platform, token, request_id) -> dict:
    return requests.get(f"{platform.gateway}/v1/formfill/requests/{request_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()


def result_of(platform, token, request_id) -> requests.Response:
    return requests.get(f"{platform.gateway}/v1/formfill/requests/{request_id}/result", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def verified_claims(platform, compact_jws: str) -> dict:
    """What the relying party does with jwcrypto (the server signs with PyJWT): verify against formfill's JWKS."""
    jwks = jwcrypto_jwk.JWKSet.from_json(requests.get(platform.gateway + "/v1/formfill/jwks", timeout=10).text)
    token = jwcrypto_jws.JWS()
    token.deserialize(compact_jws)
    token.verify(jwks.get_key(token.jose_header["kid"]), alg="ES256")
    return json.loads(token.payload)


async def wait_for_status(platform, token, request_id, wanted: str) -> dict:
    return await eventually(lambda: (s := status_of(platform, token, request_id))["status"] == wanted and s, timeout_s=20)


async def test_logged_in_journey_encrypted_to_the_client_with_an_optional_field_dropped(platform, kiosk, metadata, tmp_path):
    app, person = await citizen(platform, kiosk, tmp_path)
    rp, rp_key = rp_with_key(platform)
    token = await logged_in_token(platform, metadata, rp, app)
    request = await created(platform, token, [("name_en", True), ("email", True), ("phone", False)])
    assert "app_link" not in request  # the citizen is known from the token: no QR needed
    prompt = await eventually(lambda: _prompt_for(app, request["request_id"]), timeout_s=20)
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
    assert result_of(platform, token, request["request_id"]).status_code == 410  # released once


async def _prompt_for(app: CitizenApp, request_id: str):
    return next((p for p in await app.pending() if p["approval_id"] == f"formfill-{request_id}"), None)


async def test_anonymous_journey_with_the_cli_and_consents(platform, kiosk, metadata, tmp_path):
    app, person = await citizen(platform, kiosk, tmp_path)
    rp = register(platform, client_name="Harbour Library", scope="openid formfill", formfill_fields=FIELDS)
    token = token_request(metadata, rp, grant_type="client_credentials", scope="formfill").json()["access_token"]
    request = await created(platform, token, [("name_en", True), ("address", False), ("phone", False)], standing=True)
    assert request["app_link"].startswith("harbourid://formfill?request=")
    opened = cli(platform, app.profile_path, "open", request["app_link"], "--keep", "address")
    assert opened.returncode == 0, opened.stderr
    await wait_for_status(platform, token, request["request_id"], "approved")
    claims = verified_claims(platform, result_of(platform, token, request["request_id"]).text)
    assert claims["fields"] == {"name_en": person["name_en"], "address": person["address"]}

    listed = requests.get(platform.gateway + "/v1/consents", headers={"Authorization": f"Bearer {await app.device_token()}"}, timeout=10).json()
    [consent] = [c for c in listed["consents"] if c["request_id"] == request["request_id"]]
    assert consent["fields"] == ["name_en", "address"] and consent["standing"] and consent["status"] == "active"
    revoked = requests.delete(f"{platform.gateway}/v1/consents/{consent['receipt_id']}", headers={"Authorization": f"Bearer {await app.device_token()}"}, timeout=10)
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
    token = await logged_in_token(platform, metadata, rp, app)
    async def refusal():
        response = ask(platform, token, [("name_en", True), ("address", True)])
        # (a 4xx Response is falsy: wrap it)
        return [response] if response.status_code == 403 else None

    [refused] = await eventually(refusal, timeout_s=20)
    assert refused.headers["Content-Type"].startswith("application/problem+json") and refused.json()["fields"] == ["address"]

    denied = await created(platform, token, [("name_en", True)])
    prompt = await eventually(lambda: _prompt_for(app, denied["request_id"]), timeout_s=20)
    await app.deny(prompt["approval_id"])
    assert (await wait_for_status(platform, token, denied["request_id"], "denied"))["error"] == "access_denied"
    assert result_of(platform, token, denied["request_id"]).status_code == 403

    unread = await created(platform, token, [("name_en", True)])
    prompt = await eventually(lambda: _prompt_for(app, unread["request_id"]), timeout_s=20)
    await app.approve(prompt["approval_id"])
    await wait_for_status(platform, token, unread["request_id"], "approved")
    # Never read: after the release lifetime (12 s on the test platform) it is gone.
    await eventually(lambda: result_of(platform, token, unread["request_id"]).status_code == 410, timeout_s=40, interval_s=1)


async def test_rewrap_moves_every_record_to_the_new_key(platform, kiosk, tmp_path):
    await citizen(platform, kiosk, tmp_path)
    env = platform.env()
    new = new_key_value("vault-2")
    rotated = {**env, "HARBOUR_FORMFILL_KEK": f"{new},{env['HARBOUR_FORMFILL_KEK']}"}
    ran = subprocess.run([sys.executable, "-m", "services.formfill.admin", "rewrap"], env=rotated, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["current_kid"] == "vault-2" and report["left_on_old_keys"] == 0 and report["rewrapped"] >= 1
    # The old key retired: the new one alone opens every record.
    only_new = FieldCipher(Keyring.from_env_value(new))
    client = create_client(platform.infra.mongo_uri)
    try:
        records = await client[platform.database("formfill")].vault.find().to_list()
    finally:
        await client.close()
    assert records
    for record in records:
        assert only_new.decrypt_record(record["sealed"], record_id=record["_id"])["name_en"]


async def test_no_personal_data_in_any_database_in_the_clear(platform):
    """After the journeys: every collection of every database of this platform, dumped."""
    assert PEOPLE
    client = create_client(platform.infra.mongo_uri)
    try:
        names = [n for n in await client.list_database_names() if n.startswith(platform.stack.config.db_prefix)]
        dumped = [raw for name in names for raw in await all_documents(client, name)]
    finally:
        await client.close()
    assert len(names) >= 4 and dumped
    for person in PEOPLE:
        card = person["id_number"]
        for value in (card, card.replace("(", "").replace(")", ""), person["name_en"], person["date_of_birth"],
                      person["phone"], person["email"], person["address"]):
            assert not any(value.encode() in raw for raw in dumped), "plaintext personal data in a database"

"""The citizen's personal-data export (issue 18): everything the platform holds about them, each service's part signed.

Against the whole stack through the gateway: a plus citizen who logged in to a relying party, released form data
and signed a document downloads the export from the app; each part verifies with PyJWT and with jwcrypto against
the key its service publishes and holds that service's data (the vault's name, the device, the pairwise subject,
the consent receipt, the inbox, the certificate); a tampered part does not verify; the parts are audited, their
content is never logged; a relying party's token gets nothing, and another citizen's device gets only its own.
"""

from __future__ import annotations

import base64
import hashlib
import json

import jwt
import pytest
import requests
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from clients.citizen_app import CitizenApp, Profile
from libs.data_export import EXPORT_PATHS, JWKS_PATHS, PARTS, TYP

from ..support.calls import bearer
from ..support.database import mongo
from ..support.formfill import FIELDS, created, prompt_for as formfill_prompt, wait_for_status
from ..support.oidc import claims_of, login, logged_in_token, register
from ..support.people import identity, selfie
from ..support.polling import eventually
from ..support.signing import create as create_signing, prompt_for as signing_prompt, signing_rp, wait_for

pytestmark = pytest.mark.e2e


async def enrolled(platform, kiosk, tmp_path, person: dict, name: str) -> CitizenApp:
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, selfie(), kiosk=kiosk)
    app = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / f"{name}.json")
    await app.activate(enrolment["account_id"], enrolment["activation_code"], name)
    return app


def verified(platform, part: dict) -> dict:
    """The part's payload, verified with PyJWT against the key its service publishes now (through the gateway)."""
    header = jwt.get_unverified_header(part["jws"])
    assert header["typ"] == TYP and header["alg"] == "ES256"
    published = requests.get(part["jwks_uri"].replace(platform_issuer(platform), platform.gateway), timeout=10).json()
    key = next(k for k in published["keys"] if k["kid"] == header["kid"])
    return jwt.decode(part["jws"], jwt.PyJWK(key).key, algorithms=["ES256"], options={"require": ["iss", "sub", "iat"]})


def platform_issuer(platform) -> str:
    return requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10).json()["issuer"]


def tampered(token: str, change) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(claims)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def export_audits(platform, account_id: str) -> dict[str, dict]:
    found = {}
    async with mongo(platform.infra.mongo_uri) as client:
        for service in PARTS:
            for doc in await client[platform.database(service)]["outbox"].find({"topic": "audit.events"}).to_list():
                event = json.loads(doc["value"])
                if event["subject"] == account_id and event["data"]["action"] == "data.export":
                    found[service] = event["data"]
    return found


async def test_the_citizen_downloads_everything_each_part_signed_by_its_service(platform, kiosk, metadata, tmp_path):
    person = identity()
    phone = await enrolled(platform, kiosk, tmp_path, person, "phone")
    account_id = phone.profile.account_id
    await phone.set_preferences(channels=["inbox", "email"], email=person["email"])

    # A login (pairwise sub, grant), a form-fill release (receipt), a signature (certificate), inbox messages.
    water = register(platform, client_name="Harbour Water", scope="openid formfill offline_access", formfill_fields=FIELDS)
    formfill_token = await logged_in_token(metadata, water, phone, "openid formfill offline_access")
    asked = await created(platform, formfill_token, [("name_en", True), ("address", True)])
    await phone.approve((await formfill_prompt(phone, asked["request_id"]))["approval_id"])
    await wait_for_status(platform, formfill_token, asked["request_id"], "approved")
    office = signing_rp(platform, "Harbour Lands Office")
    tokens, _ = await login(platform, metadata, office, phone, scope="openid sign")
    office_sub = claims_of(tokens["id_token"])["sub"]
    signing = await create_signing(platform, tokens["access_token"],
                                   json={"document_name": "lease.txt", "sha256": hashlib.sha256(b"lease").hexdigest()})
    await phone.approve((await signing_prompt(phone, signing["request_id"]))["approval_id"])
    serial = (await wait_for(platform, tokens["access_token"], signing["request_id"], "signed"))["certificate_serial"]
    inbox = await eventually(lambda: phone.inbox(), timeout_s=20)

    document = await phone.export()
    assert document["type"] == "harbour-id/personal-data-export" and set(document["parts"]) == set(PARTS)
    parts = {service: verified(platform, document["parts"][service]) for service in PARTS}
    issuer = platform_issuer(platform)
    for service, claims in parts.items():
        assert claims["sub"] == account_id and claims["iss"] == issuer and claims["service"] == service
        assert "exp" not in claims and "aud" not in claims  # it cannot pass for a token
        # The copy of the JWKS in the file verifies it too, with another stock library (jwcrypto).
        part = document["parts"][service]
        token = jwcrypto_jws.JWS()
        token.deserialize(part["jws"])
        kid = jwt.get_unverified_header(part["jws"])["kid"]
        token.verify(jwcrypto_jwk.JWK(**next(k for k in part["jwks"]["keys"] if k["kid"] == kid)), alg="ES256")
        assert json.loads(token.payload)["sub"] == account_id

    auth, formfill, notify, signing_part = (parts[s]["data"] for s in PARTS)
    assert auth["parts_expected"] == list(PARTS)
    assert auth["account"]["state"] == "active" and auth["account"]["assurance"] == "plus"
    assert auth["account"]["kept_as_keyed_hashes"] == ["card-printed data", "identity card number"]
    assert "card_hash" not in auth["account"] and "activation" not in auth["account"]
    assert [d["_id"] for d in auth["devices"]] == [phone.profile.device_id]
    assert office_sub in {s["sub"] for s in auth["pairwise_subjects"]}
    assert any(rp["name"] == "Harbour Lands Office" for s in auth["pairwise_subjects"] for rp in s["relying_parties"])
    assert {"formfill", "sign"} <= {p.get("action") for p in auth["approval_prompts"]}
    grant = next(g for g in auth["grants"] if g["client_id"] == water["client_id"])  # the offline grant: never the token
    assert "formfill" in grant["scope"].split() and grant["status"] == "active" and "refresh_token" not in json.dumps(grant)

    assert formfill["vault"]["fields"]["name_en"] == person["name_en"]
    assert formfill["vault"]["fields"]["id_number"] == person["id_number"]
    assert formfill["vault"]["provenance"]["name_en"]["method"] == "in_person"
    assert [(r["client_name"], sorted(r["fields"])) for r in formfill["consent_receipts"]] == [("Harbour Water", ["address", "name_en"])]
    assert formfill["formfill_requests"][0]["purpose"] and formfill["formfill_requests"][0]["status"] == "approved"

    assert notify["preferences"]["email"] == person["email"]
    assert {m["id"] for m in inbox} <= {m["id"] for m in notify["inbox"]} and notify["inbox"][0]["body"]

    assert [c["serial"] for c in signing_part["certificates"]] == [serial]
    assert signing_part["certificates"][0]["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert "key_label" not in signing_part["certificates"][0]
    assert signing_part["signing_requests"][0]["document_name"] == "lease.txt"

    # Tampering breaks verification: another name in formfill's part, or auth's part passed off as another account's.
    for service, change in (("formfill", lambda c: c["data"]["vault"]["fields"].update(name_en="Someone Else")),
                            ("auth", lambda c: c.update(sub="acc-someone-else"))):
        forged = {**document["parts"][service], "jws": tampered(document["parts"][service]["jws"], change)}
        with pytest.raises(jwt.InvalidSignatureError):
            verified(platform, forged)

    # Each part audited (ids and counts, never the data); the content never reaches a log line.
    audits = await eventually(lambda: _all_audited(platform, account_id), timeout_s=10)
    assert audits["formfill"]["consent_receipts"] == 1 and audits["signing"]["certificates"] == 1
    assert {a["actor"] for a in audits.values()} == {phone.profile.device_id}
    logs = "".join(p.read_text(errors="replace") for p in (platform.stack.config.dev_dir / "logs").glob("*.log"))
    assert "/v1/formfill/export" in logs and "/v1/notify/export" in logs  # the requests were logged (every one is here)
    assert person["name_en"] not in logs and person["id_number"] not in logs and person["email"] not in logs


async def _all_audited(platform, account_id: str) -> dict | None:
    audits = await export_audits(platform, account_id)
    return audits if set(audits) == set(PARTS) else None


async def test_only_the_citizens_own_device_gets_their_export(platform, kiosk, metadata, tmp_path):
    chan, lee = identity(), identity()
    phone = await enrolled(platform, kiosk, tmp_path, chan, "chan")
    other = await enrolled(platform, kiosk, tmp_path, lee, "lee")

    # Another citizen's device gets its own account's export, nothing of Chan's (no path names an account).
    theirs = await other.export()
    for service in PARTS:
        claims = verified(platform, theirs["parts"][service])
        assert claims["sub"] == other.profile.account_id
        assert phone.profile.account_id not in json.dumps(claims)
        assert chan["name_en"] not in json.dumps(claims) and chan["id_number"] not in json.dumps(claims)

    # A relying party's access token (even one about Chan), no token, or a forged one: refused at the gateway.
    water = register(platform, client_name="Harbour Water", scope="openid formfill", formfill_fields=FIELDS)
    rp_token = await logged_in_token(metadata, water, phone, "openid formfill")
    for service, path in EXPORT_PATHS.items():
        assert requests.get(platform.gateway + path, timeout=10).status_code == 401, path
        assert requests.get(platform.gateway + path, headers=bearer(rp_token), timeout=10).status_code in (401, 403), path
        # ... and by each service itself, behind the gateway.
        direct = platform.stack.config.service_url(service) + path
        assert requests.get(direct, headers=bearer(rp_token), timeout=10).status_code in (401, 403), direct
    # The signing keys are public.
    for path in JWKS_PATHS.values():
        assert requests.get(platform.gateway + path, timeout=10).status_code == 200, path

"""Citizen identity end to end, through the gateway, with the services as real processes.

Kiosk enrolment → activation with the reference app → device token → a prompt
published on `approval.requested` shows in `pending` → approved →
`approval.decided` carries a signature that verifies against the device key
(checked with jwcrypto, not our own JOSE code). The app runs in process as a
library; one test drives its command line, as a person would. Then every refusal the issue
lists, each a 4xx problem+json that changes nothing, and finally a sweep of
every collection, log line and Kafka message of the run for the selfies and
the plaintext identity data.
"""

from __future__ import annotations

import base64
import io
import json
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import requests
from PIL import Image
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from clients.citizen_app import AppError, CitizenApp, Profile
from libs.events import CloudEvent
from libs.events.topics import APPROVAL_DECIDED, AUDIT, IDENTITY
from libs.tokens import public_jwk

from ..support.audit import audit_records
from ..support.broker import all_messages, raw_bytes
from ..support.calls import device_auth, post_json, refused_with
from ..support.citizens import pending_prompt
from ..support.citizens import enrolled_app as _enrolled_app
from ..support.database import mongo, service_documents
from ..support.operator import OPERATOR, admin
from ..support.people import identity, selfie, wrong_check_digit
from ..support.polling import eventually
from ..support.prompts import approval_request, publish_prompt

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"
# What this module put into the platform and must never find stored, logged or published in the clear.
SELFIES: list[bytes] = []
IDENTITIES: list[dict] = []



async def enrol(platform, kiosk, **overrides) -> tuple[dict, dict]:
    person = identity(**overrides)
    picture = selfie()
    remember(person, picture)
    app = CitizenApp(Profile(gateway_url=platform.gateway))
    return person, await app.enrol(person, picture, kiosk=kiosk)


def remember(person: dict, picture: bytes) -> None:
    """What the final sweep must never find in the clear."""
    IDENTITIES.append(person)
    SELFIES.append(picture)


async def enrolled_app(platform, kiosk, tmp_path: Path, name: str = "phone") -> CitizenApp:
    return await _enrolled_app(platform, kiosk, tmp_path, name, record=remember)


async def account_count(platform) -> int:
    async with mongo(platform.infra.mongo_uri) as client:
        return await client[platform.database("auth")].accounts.count_documents({})


def cli(platform, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """The citizen app's command line, as a person runs it (only the CLI test; the others use the library in process)."""
    return subprocess.run(
        [sys.executable, "-m", "clients.citizen_app", "--profile", str(profile), "--gateway", platform.gateway, *args],
        # The PIN sealing the device key, as a script gives it (a person types it at the prompt).
        env={**platform.env(), "HARBOUR_APP_PIN": CLI_PIN}, capture_output=True, text=True, timeout=60,
    )


CLI_PIN = "161803"


def problem(result) -> dict:
    status, headers, body = result
    assert headers["Content-Type"].startswith(PROBLEM), body
    assert body["status"] == status
    return body


async def test_kiosk_enrolment_to_approval_with_a_verifiable_signature(platform, kiosk, tmp_path):
    person, enrolment = await enrol(platform, kiosk)
    assert enrolment["state"] == "pending" and enrolment["assurance"] == "plus"

    # The app activates the device: key generated on the "phone", profile file 0600.
    profile = tmp_path / "citizen.json"
    app = CitizenApp(Profile(gateway_url=platform.gateway), profile)
    device_id = (await app.activate(enrolment["account_id"], enrolment["activation_code"]))["device_id"]
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert Profile.load(profile).device_id == device_id
    assert (await app.devices())["devices"][0]["device_id"] == device_id

    # A service asks for approval; the prompt reaches the citizen's queue.
    request = approval_request(enrolment["account_id"])
    await publish_prompt(platform, request)

    await pending_prompt(app, request.approval_id, timeout_s=30)
    approved = await app.approve(request.approval_id)
    assert approved["status"] == "approved"
    assert request.approval_id not in [p["approval_id"] for p in await app.pending()]

    # approval.decided carries the device's signature over the digest: check it with jwcrypto.
    async def decided_event() -> CloudEvent | None:
        messages = await all_messages(platform.infra.kafka_bootstrap, [APPROVAL_DECIDED.name])
        return next((e for e in map(CloudEvent.from_json, (m.value for m in messages)) if e.subject == request.approval_id), None)

    decided = await eventually(decided_event, timeout_s=30)
    assert decided.type == "approval.decided"
    data = decided.data
    device_public = public_jwk(Profile.load(profile).device_key())
    assert data["device_jwk"] == device_public and data["device_id"] == device_id
    verifier = jwcrypto_jws.JWS()
    verifier.deserialize(data["decision_jws"])
    verifier.verify(jwcrypto_jwk.JWK(**device_public), alg="ES256")
    claims = json.loads(verifier.payload)
    assert claims["decision"] == "approve"
    assert claims["approval_id"] == request.approval_id
    assert claims["digest"] == request.digest() == data["digest"]

    # The enrolment itself went out as identity.enrolled with the profile sealed.
    async def enrolled_event() -> list[CloudEvent]:
        messages = await all_messages(platform.infra.kafka_bootstrap, [IDENTITY.name])
        events = (CloudEvent.from_json(m.value) for m in messages)
        return [e for e in events if e.subject == enrolment["account_id"] and e.type == "identity.enrolled"]

    mine = await eventually(enrolled_event, timeout_s=10)
    assert mine[0].data["sealed_profile"].count(".") == 4  # compact JWE

    # Each sensitive action left an audit event.
    async def audited_actions():
        messages = await all_messages(platform.infra.kafka_bootstrap, [AUDIT.name])
        events = [CloudEvent.from_json(m.value) for m in messages]
        return {e.data["action"] for e in events if e.subject == enrolment["account_id"]}

    async def all_audited():
        return await audited_actions() >= {"identity.enrol", "device.activate", "approval.decide"}

    await eventually(all_audited)


async def test_cli_self_registration_in_the_sandbox_then_deny(platform, tmp_path):
    """The one test of the command line (every other test drives the app library in process): each command a person uses."""
    person = identity()
    picture = selfie()
    SELFIES.append(picture)
    IDENTITIES.append(person)
    (tmp_path / "me.png").write_bytes(picture)
    profile = tmp_path / "me.json"
    enrolled = cli(
        platform, profile, "enrol",
        "--id-number", person["id_number"], "--name-en", person["name_en"], "--name-zh", person["name_zh"],
        "--date-of-birth", person["date_of_birth"], "--gender", person["gender"], "--phone", person["phone"],
        "--email", person["email"], "--address", person["address"], "--selfie", str(tmp_path / "me.png"),
    )
    assert enrolled.returncode == 0, enrolled.stderr
    enrolment = json.loads(enrolled.stdout)
    assert enrolment["assurance"] == "basic"  # self-registered, not proofed in person
    activated = cli(platform, profile, "activate", "--account-id", enrolment["account_id"], "--code", enrolment["activation_code"])
    assert activated.returncode == 0, activated.stderr
    assert "PRIVATE KEY" not in profile.read_text()  # sealed under the PIN
    devices = json.loads(cli(platform, profile, "devices").stdout)
    assert [(d["status"], d["user_verification"]) for d in devices["devices"]] == [("active", "pin")]

    request = approval_request(enrolment["account_id"], purpose="Sign in to the Tax Portal")
    await publish_prompt(platform, request)
    await eventually(lambda: request.approval_id in cli(platform, profile, "pending").stdout)
    denied = cli(platform, profile, "deny", request.approval_id)
    assert denied.returncode == 0 and json.loads(denied.stdout)["status"] == "denied"
    again = cli(platform, profile, "approve", request.approval_id)
    assert again.returncode == 1 and json.loads(again.stderr)["status"] == 409


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id_number": "WRONG-DIGIT"}, "id_number"),
        ({"date_of_birth": "AGE-10"}, "date_of_birth"),
        ({"email": "not-an-email"}, "email"),
    ],
)
async def test_invalid_identity_data_is_422_and_creates_nothing(platform, kiosk, overrides, field):
    person = identity()
    if overrides.get("id_number") == "WRONG-DIGIT":
        overrides = {"id_number": wrong_check_digit(person["id_number"])}
    if overrides.get("date_of_birth") == "AGE-10":
        today = datetime.now(UTC).date()
        overrides = {"date_of_birth": today.replace(year=today.year - 10).isoformat()}
    body = {**person, **overrides, "selfie": base64.b64encode(selfie()).decode()}
    before = await account_count(platform)
    result = await post_json(platform.gateway + "/v1/enrolments", body, {"Authorization": aiohttp.encode_basic_auth(*kiosk)})
    assert result[0] == 422 and problem(result)["type"].endswith("/validation-failed")
    assert field in {e["field"] for e in problem(result)["errors"]}
    assert await account_count(platform) == before


@pytest.mark.parametrize(("picture", "slug"), [("oversized", "validation-failed"), ("not-an-image", "selfie-rejected")])
async def test_bad_selfies_are_refused_and_create_nothing(platform, kiosk, picture, slug):
    data = b"\x89PNG" + b"\0" * (2 * 1024 * 1024 + 100) if picture == "oversized" else b"GIF89a this is not a photo"
    SELFIES.append(data)
    body = {**identity(), "selfie": base64.b64encode(data).decode()}
    before = await account_count(platform)
    result = await post_json(platform.gateway + "/v1/enrolments", body, {"Authorization": aiohttp.encode_basic_auth(*kiosk)})
    assert result[0] == 422 and problem(result)["type"].endswith(f"/{slug}")
    assert "selfie" in {e["field"] for e in problem(result)["errors"]}
    assert await account_count(platform) == before


async def test_enrolment_needs_a_kiosk_with_enrol_scope(platform, kiosk):
    body = {**identity(), "selfie": base64.b64encode(selfie()).decode()}
    wrong_secret = aiohttp.encode_basic_auth(kiosk[0], "not-the-secret")
    status, headers, _ = await post_json(platform.gateway + "/v1/enrolments", body, {"Authorization": wrong_secret})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")


async def test_duplicate_card_number_is_409(platform, kiosk):
    person, _ = await enrol(platform, kiosk)
    before = await account_count(platform)
    again = {**identity(id_number=person["id_number"].lower().replace("(", " ").replace(")", "")), "selfie": base64.b64encode(selfie()).decode()}
    result = await post_json(platform.gateway + "/v1/enrolments", again, {"Authorization": aiohttp.encode_basic_auth(*kiosk)})
    assert result[0] == 409 and problem(result)["type"].endswith("/duplicate-enrolment")
    assert await account_count(platform) == before


def flat_png(size: int = 160) -> bytes:
    """A single-colour picture: decodable, but it fails proofing (no detail)."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_failing_selfie_gets_the_same_refusal_for_an_enrolled_card_as_for_a_new_one(platform, kiosk):
    """Issue 14 (14d): the duplicate check runs only after proofing, so it is no oracle for enrolled card numbers."""
    enrolled, _ = await enrol(platform, kiosk)
    picture = flat_png()
    SELFIES.append(picture)
    kiosk_auth = {"Authorization": aiohttp.encode_basic_auth(*kiosk)}
    before = await account_count(platform)

    def comparable(result) -> tuple:
        body = problem(result)
        return result[0], {k: v for k, v in body.items() if k != "instance"}

    for headers in (kiosk_auth, {}):  # at a kiosk, and by self-registration in the sandbox
        known = {**identity(id_number=enrolled["id_number"]), "selfie": base64.b64encode(picture).decode()}
        new = {**identity(), "selfie": base64.b64encode(picture).decode()}
        refused_known = comparable(await post_json(platform.gateway + "/v1/enrolments", known, headers))
        refused_new = comparable(await post_json(platform.gateway + "/v1/enrolments", new, headers))
        assert refused_known == refused_new, (refused_known, refused_new)
        assert refused_known[0] == 422 and refused_known[1]["type"].endswith("/selfie-rejected"), refused_known
    assert await account_count(platform) == before


async def test_a_revoked_device_can_do_nothing_more(platform, kiosk, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path)
    token = await app.device_token()
    await app.revoke(app.profile.device_id)
    async with aiohttp.ClientSession() as session:
        async with session.get(platform.gateway + "/v1/approvals", headers=device_auth(app, token, "GET", platform.gateway + "/v1/approvals")) as response:
            assert response.status == 401
            assert response.content_type == PROBLEM
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    with pytest.raises(AppError) as no_token:
        await app.device_token()
    refused_with(no_token.value, 401, "device-inactive")


async def test_account_states_change_by_event_and_a_suspended_account_is_stopped(platform, kiosk, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path)
    account_id = app.profile.account_id
    assert (await app.devices())["devices"]  # active: the device works

    # An operator action needs a reason and the operator's name: refused without either, nothing changed.
    unexplained = admin(platform, "set-state", account_id, "suspended")
    assert unexplained.returncode == 2 and "--reason" in unexplained.stderr
    anonymous = admin(platform, "set-state", account_id, "suspended", "--reason", "reported lost", operator=None)
    assert anonymous.returncode == 2 and "--operator" in anonymous.stderr
    assert (await app.devices())["devices"]  # still active
    suspended = admin(platform, "set-state", account_id, "suspended", "--reason", "reported lost")
    assert suspended.returncode == 0, suspended.stderr
    # Audited in the change's transaction: the operator, the reason, from and to.
    [audited] = await audit_records(platform, "auth", subject=account_id, action="identity.state_change")
    assert audited["data"] == {"action": "identity.state_change", "actor": f"operator:{OPERATOR}", "outcome": "success",
                               "reason": "reported lost", "from": "active", "to": "suspended"}
    with pytest.raises(AppError) as stopped:
        await app.device_token()
    refused_with(stopped.value, 403, "account-inactive")
    refused = admin(platform, "set-state", account_id, "pending", "--reason", "no way back")
    assert refused.returncode == 2 and "invalid choice: 'pending'" in refused.stderr  # argparse: not a target state
    back = admin(platform, "set-state", account_id, "active", "--reason", "found again")
    assert back.returncode == 0

    # Reinstated: the device works again once the edge's revocation list has heard of it (within 2 s:
    # tests/e2e/test_revocation.py); until then only that list refuses, with its 401.
    async def works_again() -> bool:
        try:
            return bool((await app.devices())["devices"])
        except AppError as exc:
            assert exc.status == 401 and "not active" in exc.problem.get("detail", ""), exc
            return False

    await eventually(works_again, timeout_s=10)

    async def transitions() -> list[tuple[str, str]]:
        messages = await all_messages(platform.infra.kafka_bootstrap, [IDENTITY.name])
        return [
            (e.data["from"], e.data["to"])
            for e in (CloudEvent.from_json(m.value) for m in messages)
            if e.subject == account_id and e.type == "identity.state_changed"
        ]

    async def all_three_published():
        return await transitions() == [("pending", "active"), ("active", "suspended"), ("suspended", "active")]

    await eventually(all_three_published)


async def test_unanswered_prompts_expire_with_an_event_and_a_metric(platform, kiosk, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path)
    request = approval_request(app.profile.account_id, expires_in_s=2)
    await publish_prompt(platform, request)

    async def expired_event() -> bool:
        messages = await all_messages(platform.infra.kafka_bootstrap, [APPROVAL_DECIDED.name])
        return any(CloudEvent.from_json(m.value).type == "approval.expired" and m.key == request.approval_id.encode() for m in messages)

    await eventually(expired_event, timeout_s=30)
    assert (await app.show(request.approval_id))["status"] == "expired"
    metrics = requests.get(platform.stack.config.metrics_url("auth"), timeout=10).text
    assert 'harbour_approvals_expired_total{action="test"}' in metrics
    assert "harbour_token_signing_key_age_seconds" in metrics


async def test_nothing_personal_is_stored_logged_or_published_in_the_clear(platform):
    """Runs last in this module: sweeps everything the run produced."""
    assert SELFIES and IDENTITIES
    needles: list[bytes] = []
    for picture in SELFIES:
        needles += [picture[:64], picture[-64:], base64.b64encode(picture)[:64], base64.b64encode(picture)[-64:]]
    clear_values = []
    for person in IDENTITIES:
        card = person["id_number"]
        clear_values += [card, card.replace("(", "").replace(")", ""), person["name_en"], person["date_of_birth"], person["email"], person["phone"]]
    clear = [v.encode() for v in clear_values] + ["陳大文".encode()]

    documents = await service_documents(platform, "auth")
    assert documents
    for raw in documents:
        assert not any(n in raw for n in needles), "a selfie reached the database"
        assert not any(v in raw for v in clear), "plaintext identity data in an auth collection"

    # Every topic of the broker, read to its end (once seen empty in a full run: a metadata answer that listed
    # no topics — so it is read again rather than passing a sweep of nothing).
    messages = await eventually(lambda: all_messages(platform.infra.kafka_bootstrap), timeout_s=30, interval_s=1.0)
    assert {m.topic for m in messages} >= {IDENTITY.name, APPROVAL_DECIDED.name}
    for message in messages:
        raw = raw_bytes(message)
        assert not any(n in raw for n in needles), f"a selfie reached Kafka ({message.topic})"
        assert not any(v in raw for v in clear), f"plaintext identity data on Kafka ({message.topic})"

    lines = [line for log in platform.stack.log_dir.glob("*.log") for line in log.read_bytes().splitlines()]
    assert lines
    for line in lines:
        assert not any(n in line for n in needles), "a selfie reached a log"
        assert not any(v in line for v in clear), "plaintext identity data in a log"

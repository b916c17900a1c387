"""The public API against its own OpenAPI document: schemathesis through the gateway, with every service up.

Every operation of the gateway's merged `/openapi.json` gets MAX_EXAMPLES
generated requests, valid and invalid ones, sent with real credentials for
its security scheme (a kiosk, an agency client, a citizen's device token, an
access token, the admin token), so the edge and the handlers are reached;
then the few known-good requests below, which no generator can guess (real
ids, signed assertions), so that the success answers are checked against
their schemas too. Every answer must be documented: no 5xx, a documented
status and content type, a body matching its schema — schemathesis' default
checks, one of them tuned (POSITIVE_DATA_STATUSES).

Bounded: no deadline, no shrinking (a failure is reported with its request
as curl), a fixed seed, and a pace below the gateway's per-address rate
limit so the cases reach the services instead of being answered 429.

Two lengths: `make test` runs MAX_EXAMPLES per operation; `make fuzz` sets
HARBOUR_FUZZ_CASES (5,000) and the run then draws enough per operation for
that many cases in all — with further rounds under new seeds for the
operations that still had more to give, when others ran out of distinct
inputs early — and fails if it generated fewer.

schemathesis' pytest integration (`schemathesis.pytest.from_fixture`) does
not run under pytest 9 (it writes `Node._nodeid`), so the operations are
driven through the public per-operation API: `operation.as_strategy()` and
`case.call_and_validate()`.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import math
import os
import pkgutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from clients.citizen_app import CitizenApp, Profile
from libs.approvals import sign_decision
from libs.tokens import generate_private_key, public_jwk, sign
from libs.tokens.dpop import make_proof
from services.auth.oidc.pkce import s256

from ..support.citizens import enrolled_app
from ..support.operator import create_kiosk
from ..support.people import identity, selfie
from ..support.polling import eventually
from ..support.prompts import approval_request, publish_prompt

pytestmark = pytest.mark.e2e


def _import_schemathesis_now() -> None:
    """Import the parts of schemathesis this test uses while collection runs, on the main thread alone.

    schemathesis imports most of itself lazily (loading a document, drawing cases, validating answers),
    and pytest rewrites each of its modules, with ast.parse, the first time one is imported. CPython
    before 3.11.8 (Debian 12's python3 is 3.11.2) can then fail with "SystemError: AST constructor
    recursion depth mismatch" when another thread parses at the same moment (cpython gh-106905, fixed in
    3.11.8; 3.11's tracebacks call ast.parse too). That happened mid-test on the first `make test` of a fresh machine,
    before pytest had cached the rewritten modules.
    """
    for part in ("core", "engine", "generation", "openapi", "python", "specs.openapi", "transport", "wfc"):
        package = importlib.import_module(f"schemathesis.{part}")
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)


_import_schemathesis_now()

MAX_EXAMPLES = 25
# `make fuzz`: at least this many generated cases across every operation (0: the short run of `make test`).
FUZZ_CASES = int(os.environ.get("HARBOUR_FUZZ_CASES", "0"))
SEED = 20_260_611
# Requests per second, kept at 80 % of the gateway's per-address limit (the checks send a few probes of their
# own): 40/s under the default 50/s; the test platform raises the limit, so the run is paced only by the answers.
SHARE_OF_RATE_LIMIT = 0.8
# Statuses a schema-valid request may get besides 2xx/3xx. The JSON Schema cannot say everything the
# models and the domain check (identity card check digits, ages, JWS signatures, activation codes, client
# credentials...), and a drawn identifier is never a real one, so valid-looking data is refused as the
# domain says: 400/410/422 as well as the check's default 401/403/404/409/429.
POSITIVE_DATA_STATUSES = ["2xx", "3xx", "400", "401", "403", "404", "409", "410", "422", "429"]
REDIRECT = "http://127.0.0.1:8765/callback"
FORM = "application/x-www-form-urlencoded"


# Binary request bodies beyond octet-stream: signing's RFC 3161 TSA takes DER bytes as application/timestamp-query,
# its OCSP responder (RFC 6960) as application/ocsp-request.
schemathesis.serializer.alias("application/timestamp-query", "application/octet-stream")
schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")


def schemathesis_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "request-timeout": 15,
            "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_DATA_STATUSES}},
        }
    )


class PacedSession(requests.Session):
    """A requests session that keeps under a request rate. A device token (DPoP-bound to its device key, `dpop_keys`:
    token -> key) goes out with a fresh DPoP proof by that key for each request, as the citizen app sends it."""

    def __init__(self, per_s: float, dpop_keys: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.interval = 1.0 / per_s
        self.last = 0.0
        self.dpop_keys = dpop_keys or {}

    def send(self, request, **kwargs):
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme == "DPoP" and token in self.dpop_keys:
            request.headers["DPoP"] = make_proof(self.dpop_keys[token], request.method, request.url, access_token=token)
        return super().send(request, **kwargs)

    def request(self, *args, **kwargs):
        wait = self.last + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last = time.monotonic()
        return super().request(*args, **kwargs)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class KnownGood:
    """A request no generator can guess, run through the same checks as the generated ones."""

    label: str  # "METHOD /path/{template}"
    authorization: str | None = None
    case: dict[str, Any] = field(default_factory=dict)  # path_parameters, query, body, media_type


@dataclass
class Credentials:
    by_scheme: dict[str, str]  # security scheme → Authorization header value
    known_good: list[KnownGood]
    dpop_keys: dict[str, Any] = field(default_factory=dict)  # device token → the device key its proofs are signed by


def wait_for_document(url: str, expected_path: str, timeout_s: float = 30.0) -> None:
    """The gateway fetches the services' documents in the background: wait until auth's paths are merged in."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code == 200 and expected_path in response.json().get("paths", {}):
                return
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never listed {expected_path} (is install_openapi called in services/gateway/app.py?)")
        time.sleep(0.5)


def provision(platform, tmp_path) -> Credentials:
    """A kiosk, an agency, a relying party, a citizen with a device and a pending prompt; the admin token."""
    gateway = platform.gateway
    kiosk = create_kiosk(platform)
    agency_metadata = {"client_name": "Schemathesis Agency", "kind": "agency", "scope": "formfill sign notify"}
    agency = requests.post(gateway + "/v1/clients", json=agency_metadata, timeout=10).json()
    rp = requests.post(gateway + "/v1/clients", json={"client_name": "Schemathesis Portal", "redirect_uris": [REDIRECT],
                                                        "scope": "openid"}, timeout=10).json()
    agency_auth = basic(agency["client_id"], agency["client_secret"])
    registration = f"Bearer {agency['registration_access_token']}"
    reader = requests.post(gateway + "/v1/clients", json={"client_name": "Schemathesis Reader", "kind": "agency", "scope": "notify"},
                           timeout=10).json()
    doomed = requests.post(gateway + "/v1/clients", json={"client_name": "Schemathesis Leaver", "kind": "agency", "scope": "notify"},
                           timeout=10).json()

    def client_token() -> str:
        response = requests.post(gateway + "/oidc/token", data={"grant_type": "client_credentials"},
                                 headers={"Authorization": agency_auth}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    app = asyncio.run(enrolled_app(platform, kiosk, tmp_path))
    device_token = asyncio.run(app.device_token())
    device = f"DPoP {device_token}"
    prompt = approval_request(app.profile.account_id)
    asyncio.run(publish_prompt(platform, prompt))

    def queued() -> bool:
        listed = requests.get(gateway + "/v1/approvals", headers=app.device_headers("GET", "/v1/approvals", device_token),
                              timeout=10).json()
        return any(p["approval_id"] == prompt.approval_id for p in listed.get("approvals", []))

    asyncio.run(eventually(queued))
    now = int(datetime.now(UTC).timestamp())
    assertion = sign({"aud": f"{gateway}/v1/devices/token", "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex},
                     app.profile.device_key(), headers={"kid": app.profile.device_id})
    decision = sign_decision(app.profile.device_key(), device_id=app.profile.device_id, approval_id=prompt.approval_id,
                             digest=prompt.digest(), decision="approve")
    verifier = uuid.uuid4().hex + uuid.uuid4().hex
    authorize = {"client_id": rp["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
                 "state": "s-1", "nonce": "n-1", "code_challenge": s256(verifier), "code_challenge_method": "S256"}
    enrolment = {**identity(), "selfie": base64.b64encode(selfie()).decode()}
    # A kiosk's second proofing: a citizen of their own for each (a replacement revokes devices), enrolled now.
    lost_phone = {**identity(), "selfie": base64.b64encode(selfie()).decode()}
    basic_one = {**identity(), "selfie": base64.b64encode(selfie()).decode()}
    for body, authorization in ((lost_phone, basic(*kiosk)), (basic_one, None)):
        enrolled = requests.post(gateway + "/v1/enrolments", json=body, timeout=10,
                                 headers={"Authorization": authorization} if authorization else {})
        assert enrolled.status_code == 201, enrolled.text
    # Adding a device from an existing one: a new phone's pairing waiting for its code, a phone of another citizen to
    # enter it (the generated claims spend the main device's account's wrong codes), and a fresh proof for a new one.
    pairer = asyncio.run(enrolled_app(platform, kiosk, tmp_path, "pairer"))
    pairer_token = asyncio.run(pairer.device_token())
    pairer_device = f"DPoP {pairer_token}"
    waiting = asyncio.run(CitizenApp(Profile(gateway_url=gateway), tmp_path / "newcomer.json").start_pairing("tablet"))
    new_key = generate_private_key()
    challenge = requests.post(gateway + "/v1/devices/challenges", json={}, timeout=10).json()
    new_proof = sign({"nonce": challenge["nonce"], "aud": challenge["audience"], "iat": now, "exp": now + 600}, new_key)
    known_good = [
        KnownGood("POST /v1/devices/pairings", None,
                  {"body": {"public_key": public_jwk(new_key), "device_name": "watch", "proof": new_proof}}),
        KnownGood("GET /v1/devices/pairings/{pairing_id}", None, {"path_parameters": {"pairing_id": waiting["pairing_id"]}}),
        KnownGood("POST /v1/devices/pairings/claim", pairer_device, {"body": {"code": waiting["code"]}}),
        KnownGood("PATCH /v1/devices/{device_id}", device,
                  {"path_parameters": {"device_id": app.profile.device_id}, "body": {"name": "schemathesis phone"}}),
        KnownGood("POST /v1/clients", None, {"body": {"client_name": "Another Portal", "redirect_uris": [REDIRECT], "scope": "openid offline_access"}}),
        # Each self-service known-good has a client of its own: a PUT rotates the token, a DELETE removes the client.
        KnownGood("GET /v1/clients/{client_id}", f"Bearer {reader['registration_access_token']}",
                  {"path_parameters": {"client_id": reader["client_id"]}}),
        # RFC 7592 self-service: the agency's own contacts (the update rotates its registration token).
        KnownGood("PUT /v1/clients/{client_id}", registration,
                  {"path_parameters": {"client_id": agency["client_id"]}, "body": {**agency_metadata, "contacts": ["ops@agency.example"]}}),
        KnownGood("PUT /v1/clients/{client_id}", f"Bearer {platform.env()['HARBOUR_ADMIN_TOKEN']}",
                  {"path_parameters": {"client_id": agency["client_id"]}, "body": {**agency_metadata, "client_name": "Schemathesis Agency 2"}}),
        KnownGood("DELETE /v1/clients/{client_id}", f"Bearer {doomed['registration_access_token']}",
                  {"path_parameters": {"client_id": doomed["client_id"]}}),
        KnownGood("POST /v1/enrolments", basic(*kiosk), {"body": enrolment}),
        KnownGood("POST /v1/enrolments/replacements", basic(*kiosk), {"body": lost_phone}),
        KnownGood("POST /v1/enrolments/upgrades", basic(*kiosk), {"body": basic_one}),
        KnownGood("POST /v1/devices/token", None, {"body": {"assertion": assertion}}),
        KnownGood("GET /v1/devices", device),
        KnownGood("GET /v1/approvals", device),
        KnownGood("GET /v1/approvals/{approval_id}", device, {"path_parameters": {"approval_id": prompt.approval_id}}),
        KnownGood("POST /v1/approvals/{approval_id}/decision", device,
                  {"path_parameters": {"approval_id": prompt.approval_id}, "body": {"decision": decision}}),
        KnownGood("GET /oidc/authorize", None, {"query": authorize}),
        KnownGood("GET /oidc/authorize", None, {"query": {**authorize, "prompt": "none"}}),
        KnownGood("POST /oidc/token", agency_auth, {"body": {"grant_type": "client_credentials"}, "media_type": FORM}),
        KnownGood("POST /oidc/introspect", agency_auth, {"body": {"token": client_token()}, "media_type": FORM}),
        KnownGood("POST /oidc/revoke", agency_auth, {"body": {"token": client_token()}, "media_type": FORM}),
        KnownGood("GET /oidc/userinfo", f"Bearer {client_token()}"),
    ]
    return Credentials(
        by_scheme={
            "admin": f"Bearer {platform.env()['HARBOUR_ADMIN_TOKEN']}",
            "kioskBasic": basic(*kiosk),
            "clientAuth": agency_auth,
            "registrationToken": registration,
            "deviceToken": device,
            "bearer": f"Bearer {client_token()}",
        },
        known_good=known_good,
        dpop_keys={device_token: app.profile.device_key(), pairer_token: pairer.profile.device_key()},
    )


def authorization_for(definition: dict[str, Any], credentials: Credentials) -> str | None:
    """The credentials of the operation's first security alternative we hold (None: public, or anonymous first)."""
    for requirement in definition.get("security", []):
        if not requirement:
            return None
        for scheme in requirement:
            if scheme in credentials.by_scheme:
                return credentials.by_scheme[scheme]
    return None


def _shorten(text: str, limit: int = 4000) -> str:
    """Failure reports carry the request as curl: generated values can be very long."""
    lines = [line if len(line) <= 600 else line[:600] + f"... [{len(line) - 600} more characters]" for line in text.splitlines()]
    text = "\n".join(lines)
    return text if len(text) <= limit else text[:limit] + "\n[...]"


def exercise(operation, session: requests.Session, base_url: str, authorization: str | None,
             max_examples: int = MAX_EXAMPLES, run_seed: int = SEED) -> tuple[int, str | None]:
    """Up to max_examples generated cases (valid and invalid) of one operation: (cases run, failure report or None)."""
    cases = 0
    headers = {"Authorization": authorization} if authorization else None
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @seed(run_seed)
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
    )
    @given(case=strategy)
    def run(case) -> None:
        nonlocal cases
        cases += 1
        case.call_and_validate(base_url=base_url, session=session, headers=headers)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
        return cases, _shorten(f"{type(exc).__name__}: {exc}")
    return cases, None


def run_known_good(operation, session: requests.Session, base_url: str, known: KnownGood) -> str | None:
    case = operation.Case(**known.case)
    headers = {"Authorization": known.authorization} if known.authorization else None
    try:
        response = case.call_and_validate(base_url=base_url, session=session, headers=headers)
    except (Exception, BaseExceptionGroup) as exc:
        return _shorten(f"known-good request: {type(exc).__name__}: {exc}")
    if response.status_code >= 400 and known.label != "GET /oidc/userinfo":  # a client token has no openid: 403
        return f"known-good request answered {response.status_code}: {response.text[:500]}"
    return None


def run_schemathesis(openapi_url: str, credentials: Credentials, per_s: float) -> tuple[dict[str, int], dict[str, str]]:
    """Every operation of the document: (cases per operation, failure report per failing operation)."""
    # Loaded from the dict rather than `from_url`, which leaves out the operation serving the document itself.
    document = requests.get(openapi_url, timeout=10).json()
    schema = schemathesis.openapi.from_dict(document, config=schemathesis_config())
    base_url = openapi_url.removesuffix("/openapi.json")
    session = PacedSession(per_s, credentials.dpop_keys)
    counts: Counter[str] = Counter()
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]  # raises for an operation defined badly
    per_operation = max(MAX_EXAMPLES, math.ceil(FUZZ_CASES / len(operations)))
    open_ended: list = []  # operations that produced every case asked for: they may have more to give
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        definition = schema.raw_schema["paths"][operation.path][operation.method.lower()]
        counts[label], failure = exercise(operation, session, base_url, authorization_for(definition, credentials), per_operation)
        if counts[label] >= per_operation:
            open_ended.append((operation, label, definition))
        reports = [failure] if failure else []
        for known in (k for k in credentials.known_good if k.label == label):
            counts[label] += 1
            if report := run_known_good(operation, session, base_url, known):
                reports.append(report)
        if reports:
            failures[label] = "\n\n".join(reports)
    # The long run: operations with few distinct inputs run out early; the others draw again under new seeds.
    rounds = 0
    while FUZZ_CASES and sum(counts.values()) < FUZZ_CASES and open_ended and rounds < 10:
        rounds += 1
        more = math.ceil((FUZZ_CASES - sum(counts.values())) / len(open_ended))
        for operation, label, definition in list(open_ended):
            ran, failure = exercise(operation, session, base_url, authorization_for(definition, credentials), more, SEED + rounds)
            counts[label] += ran
            if ran < more:
                open_ended.remove((operation, label, definition))
            if failure:
                failures[label] = "\n\n".join(filter(None, [failures.get(label), failure]))
    return dict(counts), failures


def documented_operations(document: dict) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    }


def report(capsys, counts: dict[str, int], failures: dict[str, str], elapsed_s: float) -> None:
    with capsys.disabled():
        print(f"\nschemathesis: {len(counts)} operations, {sum(counts.values())} cases, {len(failures)} failing, {elapsed_s:.0f} s")
        for label in sorted(counts):
            print(f"  {counts[label]:4d}  {'FAIL' if label in failures else 'ok  '}  {label}")


def test_the_public_api_conforms_to_its_openapi_document(platform, tmp_path, capsys):
    url = platform.gateway + "/openapi.json"
    wait_for_document(url, "/v1/enrolments")
    document = requests.get(url, timeout=10).json()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": platform.gateway}]
    assert {"/openapi.json", "/docs", "/healthz"} <= set(document["paths"])
    credentials = provision(platform, tmp_path)
    started = time.monotonic()
    per_s = SHARE_OF_RATE_LIMIT * float(platform.env().get("HARBOUR_GATEWAY_RATE_PER_IP", "50"))
    counts, failures = run_schemathesis(url, credentials, per_s)
    report(capsys, counts, failures, time.monotonic() - started)
    assert not failures, "\n\n".join(f"=== {label}\n{text}" for label, text in failures.items())
    never = documented_operations(document) - {label for label, n in counts.items() if n > 0}
    assert not never, f"operations never exercised: {sorted(never)}"
    assert {k.label for k in credentials.known_good} <= set(counts)
    assert sum(counts.values()) >= FUZZ_CASES, f"only {sum(counts.values())} cases generated, {FUZZ_CASES} wanted"

"""Production mode (`HARBOUR_SANDBOX=false`) against real processes.

A platform of its own runs in production mode on the test broker and
database (tests/support/production.py: secrets of its own, an https issuer,
no dev-only switch): through its gateway, self-registration and open client
registration are refused while the operator's registration works, and
loopback callbacks are off. Then each process is started once more with one
piece of development configuration — a dev-only switch or a secret the
development cluster publishes — and must refuse to start: exit 78 and one
JSON log line naming the variable, never its value.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
import requests

from libs.devstack import DevStack
from libs.devstack.config import REPO_ROOT, WORKERS
from libs.devstack.processes import http_ok, wait_until
from libs.service.app import EXIT_CONFIG

from ..support.consumer_groups import read_from_now
from ..support.database import mongo
from ..support.people import identity, selfie
from ..support.production import production_config, published_dev_secrets

PUBLISHED = published_dev_secrets()


@pytest.fixture(scope="module")
def production(infra):
    """The five services and the dispatcher as processes in production mode, with databases and groups of their own."""
    run_dir = REPO_ROOT / ".dev" / f"test-production-{os.getpid()}"
    config = production_config(infra, run_dir)
    asyncio.run(read_from_now(config.kafka_bootstrap, config.extra_env["HARBOUR_KAFKA_GROUP_PREFIX"]))
    stack = DevStack(config)
    try:
        stack.up_services()
        yield stack
    finally:
        stack.down_services()
        asyncio.run(_drop_databases(infra.mongo_uri, config.db_prefix))
        shutil.rmtree(run_dir, ignore_errors=True)


async def _drop_databases(uri: str, prefix: str) -> None:
    async with mongo(uri) as client:
        for name in await client.list_database_names():
            if name.startswith(prefix):
                await client.drop_database(name)


def _count(stack: DevStack, service: str, collection: str) -> int:
    async def count() -> int:
        async with mongo(stack.config.mongo_uri) as client:
            return await client[f"{stack.config.db_prefix}{service}"][collection].count_documents({})
    return asyncio.run(count())


def _problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    return problem


def _operator(stack: DevStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.config.service_env()['HARBOUR_ADMIN_TOKEN']}"}


def test_self_registration_is_refused_and_stores_nothing(production):
    gateway = production.config.service_url("gateway")
    enrolment = {**identity(), "selfie": base64.b64encode(selfie()).decode()}
    accounts = _count(production, "auth", "accounts")

    refused = requests.post(gateway + "/v1/enrolments", json=enrolment, timeout=30)
    _problem(refused, 401)
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert _count(production, "auth", "accounts") == accounts

    # The same enrolment at a kiosk the operator registered is taken: only the missing kiosk was refused.
    kiosk = requests.post(gateway + "/v1/clients", headers=_operator(production), timeout=30,
                          json={"client_name": "Kiosk Production", "kind": "kiosk", "scope": "enrol"})
    assert kiosk.status_code == 201, kiosk.text
    enrolled = requests.post(gateway + "/v1/enrolments", json=enrolment, timeout=30,
                             auth=(kiosk.json()["client_id"], kiosk.json()["client_secret"]))
    assert enrolled.status_code == 201, enrolled.text
    assert _count(production, "auth", "accounts") == accounts + 1


def _account(stack: DevStack, account_id: str) -> dict:
    async def find() -> dict:
        async with mongo(stack.config.mongo_uri) as client:
            return await client[f"{stack.config.db_prefix}auth"]["accounts"].find_one({"_id": account_id})
    return asyncio.run(find())


def test_self_service_recovery_is_refused_and_changes_nothing(production):
    """The sandbox's recovery of a lost phone without a kiosk (POST /v1/enrolments/recovery) does not exist here."""
    gateway = production.config.service_url("gateway")
    kiosk = requests.post(gateway + "/v1/clients", headers=_operator(production), timeout=30,
                          json={"client_name": "Kiosk Recovery", "kind": "kiosk", "scope": "enrol"})
    assert kiosk.status_code == 201, kiosk.text
    enrolment = {**identity(), "selfie": base64.b64encode(selfie()).decode()}
    enrolled = requests.post(gateway + "/v1/enrolments", json=enrolment, timeout=30,
                             auth=(kiosk.json()["client_id"], kiosk.json()["client_secret"]))
    assert enrolled.status_code == 201, enrolled.text
    account_id = enrolled.json()["account_id"]
    before = _account(production, account_id)

    refused = requests.post(gateway + "/v1/enrolments/recovery", json=enrolment, timeout=30)
    assert _problem(refused, 403)["type"].endswith("/sandbox-only")
    assert _account(production, account_id) == before  # the same activation code, no replacement
    # The kiosk still replaces a lost phone in production.
    replaced = requests.post(gateway + "/v1/enrolments/replacements", json=enrolment, timeout=30,
                             auth=(kiosk.json()["client_id"], kiosk.json()["client_secret"]))
    assert replaced.status_code == 201, replaced.text


def test_open_client_registration_is_refused_and_the_operators_works(production):
    gateway = production.config.service_url("gateway")
    metadata = {"client_name": "Open Registration", "redirect_uris": ["https://rp.example/cb"], "scope": "openid"}
    clients = _count(production, "auth", "clients")

    anonymous = requests.post(gateway + "/v1/clients", json=metadata, timeout=30)
    _problem(anonymous, 401)
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    wrong_token = requests.post(gateway + "/v1/clients", json=metadata, timeout=30, headers={"Authorization": "Bearer not-the-admin-token"})
    _problem(wrong_token, 401)
    assert _count(production, "auth", "clients") == clients

    registered = requests.post(gateway + "/v1/clients", json=metadata, headers=_operator(production), timeout=30)
    assert registered.status_code == 201, registered.text
    assert registered.json()["client_id"] and registered.json()["client_secret"]
    assert _count(production, "auth", "clients") == clients + 1

    # Loopback is off: not even the operator can aim a status callback or a jwks_uri at the platform's own host.
    for inside in ({"callback_urls": ["http://127.0.0.1:9/status"]}, {"jwks_uri": "http://127.0.0.1:9/jwks"}):
        refused = requests.post(gateway + "/v1/clients", json=metadata | inside, headers=_operator(production), timeout=30)
        _problem(refused, 422)
    assert _count(production, "auth", "clients") == clients + 1


def _published(*variables: str) -> dict[str, str]:
    return {variable: PUBLISHED[variable] for variable in variables}


DEVELOPMENT_CONFIGURATION = [
    ("auth", {"HARBOUR_OUTBOUND_ALLOW_LOOPBACK": "1"}),
    ("notify-dispatcher", {"HARBOUR_OUTBOUND_ALLOW_LOOPBACK": "true"}),
    ("gateway", {"HARBOUR_ISSUER": "http://127.0.0.1:8000"}),
    ("auth", _published("HARBOUR_AUTH_HASH_KEY")),
    ("auth", _published("HARBOUR_ADMIN_TOKEN")),
    ("auth", _published("HARBOUR_AUTH_KEK", "HARBOUR_AUTH_SEALING_KEY")),
    ("formfill", _published("HARBOUR_FORMFILL_SEALING_KEY", "HARBOUR_FORMFILL_SEALING_PUBLIC_JWK")),
    ("notify", _published("HARBOUR_NOTIFY_KEK")),
    ("notify", _published("HARBOUR_NOTIFY_SEALING_KEY")),
    ("signing", _published("HARBOUR_SIGNING_KEK")),
]


@pytest.mark.parametrize(("name", "development"), DEVELOPMENT_CONFIGURATION,
                         ids=[f"{name}-{'+'.join(v.removeprefix('HARBOUR_') for v in development)}"
                              for name, development in DEVELOPMENT_CONFIGURATION])
def test_a_process_refuses_to_start_in_production_with_development_configuration(production, infra, name, development):
    # The production platform's configuration (its upstreams, secrets and HSM token), with this process on ports, a
    # database and consumer groups of its own: were the check missing, it would start and become ready.
    config = production_config(infra, production.dev_dir)
    config.service_ports = {**production.config.service_ports, **{s: p for s, p in config.service_ports.items() if s == name}}
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HARBOUR_")}
    environment |= config.service_env() | development
    module = WORKERS.get(name, f"services.{name}")
    ready = (config.worker_url(name) if name in WORKERS else config.service_url(name)) + "/readyz"
    log_file = production.dev_dir / "logs" / f"refused-{name}-{uuid.uuid4().hex[:6]}.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", module], cwd=REPO_ROOT, env=environment,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: process.poll() is not None or http_ok(ready), timeout_s=90, what=f"{name} to exit or be ready")
        assert process.poll() is not None, f"{name} started in production mode with {sorted(development)}"
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)

    output = log_file.read_text()
    assert process.returncode == EXIT_CONFIG, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    refusal = next((line for line in lines if line.get("event") == "refusing to start"), None)
    assert refusal is not None, output
    assert refusal["level"] == "error" and refusal["service"] == name
    # It names exactly what it refused (the platform's own secrets pass), and never a secret's value.
    assert sorted(refusal["settings"]) == sorted(development), refusal
    assert all(variable in refusal["reason"] for variable in development)
    for variable, value in development.items():
        if variable in PUBLISHED:
            assert value not in output and value.split(":")[-1] not in output

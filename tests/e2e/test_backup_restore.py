"""Backup and restore for real: a platform backed up while it runs, stopped, and restored into a fresh one.

A stack of its own (broker, database, the five services and the dispatcher on free ports, its own folder) enrols a
citizen with a phone and signs a PDF for a relying party; `python -m libs.devstack backup` writes every service's
database, the HSM token and — in a folder apart — the keys. That stack is stopped. A second stack (new folder, new
broker and database, nothing shared but the public ports: a restore keeps the issuer URL, as it would in production)
gets `python -m libs.devstack restore` and starts. Then the old signature still verifies (our API, and poppler
trusting the root the restored platform publishes — the same root), the phone's device token from before still
works, a new login and a form fill work (auth's keys, the vault's keys, the projections came back), a new signature
is made with the citizen's restored HSM key (the same certificate), and the event the old platform had already
published reaches the new broker (the outbox replay).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from asn1crypto import pem
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from libs.devstack import DevStack, StackConfig
from libs.devstack.config import REPO_ROOT
from libs.events import CloudEvent, agency_topic

from ..support.broker import all_messages
from ..support.calls import device_auth
from ..support.citizens import enrolled_app
from ..support.formfill import FIELDS, created, prompt_for as formfill_prompt, result_of as formfill_result, wait_for_status
from ..support.oidc import logged_in_token, register
from ..support.operator import create_kiosk
from ..support.people import identity
from ..support.polling import eventually
from ..support.signing import PDF, application_pdf, create, pdfsig, prompt_for, result_of, trust_files, wait_for

pytestmark = pytest.mark.e2e
SCOPE = "openid sign formfill"


@dataclass(frozen=True)
class Running:
    """One of the test's two platforms, shaped as the support helpers expect (`gateway`, `env()`)."""

    stack: DevStack

    @property
    def gateway(self) -> str:
        return self.stack.config.service_url("gateway")

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.stack.config.service_env()}


async def routing_to_every_service(platform: Running) -> None:
    """Await the gateway's probes finding every upstream up: the gateway starts alongside the services, and one it
    probed before it listened keeps its circuit open until the next probe (HARBOUR_GATEWAY_UPSTREAM_PROBE_S)."""
    def every_upstream_ok() -> bool:
        upstreams = requests.get(platform.gateway + "/readyz", timeout=10).json().get("upstreams", {})
        return bool(upstreams) and all(status == "ok" for status in upstreams.values())

    await eventually(every_upstream_ok, timeout_s=30)


def devstack_cli(config: StackConfig, *args: str) -> subprocess.CompletedProcess:
    """`python -m libs.devstack ARGS` aimed at the stack of `config` (as `make backup` / `make restore` run it)."""
    env = {**os.environ, "HARBOUR_DEV_DIR": str(config.dev_dir), "HARBOUR_KAFKA_PORT": str(config.kafka_port),
           "HARBOUR_MONGO_PORT": str(config.mongo_port),
           **{f"HARBOUR_{name.upper()}_PORT": str(port) for name, port in config.service_ports.items()}}
    return subprocess.run([sys.executable, "-m", "libs.devstack", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


async def signed_pdf(platform: Running, metadata: dict, rp: dict, app, text: str) -> tuple[dict, bytes]:
    """A logged-in PDF signature approved on the phone: (the request's final status, the signed PDF)."""
    token = await logged_in_token(metadata, rp, app, SCOPE)
    request = await create(platform, token, data=application_pdf(text), params={"document_name": "berth.pdf"},
                           headers={"Content-Type": PDF})
    await app.approve((await prompt_for(app, request["request_id"]))["approval_id"])
    done = await wait_for(platform, token, request["request_id"], "signed")
    result = result_of(platform, token, request["request_id"])
    assert result.status_code == 200, result.text
    return done, result.content


def published_root(platform: Running) -> bytes:
    """The root certificate (DER) the platform publishes at GET /v1/signing/ca (after the issuing CA)."""
    response = requests.get(platform.gateway + "/v1/signing/ca", timeout=10)
    assert response.status_code == 200, (response.status_code, response.text[:500])
    return [der for _, _, der in pem.unarmor(response.content, multiple=True)][-1]


def verified_by_the_api(platform: Running, pdf: bytes) -> dict:
    verdict = requests.post(platform.gateway + "/v1/signing/verify", data=pdf, headers={"Content-Type": PDF}, timeout=60)
    assert verdict.status_code == 200, verdict.text
    return verdict.json()


async def completed_on(platform: Running, client_id: str, request_id: str) -> bool:
    """Whether `signature.completed` for `request_id` is on the client's own topic of the platform's broker."""
    events = [CloudEvent.from_json(m.value) for m in await all_messages(platform.stack.config.kafka_bootstrap, [agency_topic(client_id)])]
    return any(e.type == "signature.completed" and e.data.get("request_id") == request_id for e in events)


def released_fields(release: str, key: jwcrypto_jwk.JWK) -> dict:
    """The fields of a form-fill release: the JWE opened with the relying party's key, the JWS's payload read."""
    envelope = jwcrypto_jwe.JWE()
    envelope.deserialize(release, key=key)
    payload = envelope.payload.decode().split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["fields"]


@pytest.fixture
def folders():
    base = REPO_ROOT / ".dev" / f"test-backup-{os.getpid()}"
    yield {name: base / name for name in ("before", "after", "backup", "keys")}
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(300)  # two whole platforms started and stopped; slow on a loaded 2-core machine
async def test_a_backup_restored_into_a_fresh_platform_keeps_signatures_devices_and_keys(folders, tmp_path):
    before = DevStack(StackConfig.free_ports(folders["before"]))
    after: DevStack | None = None
    try:
        # -- the platform that is backed up -------------------------------------------------------------------
        await asyncio.to_thread(before.up)
        old = Running(before)
        await routing_to_every_service(old)
        metadata = requests.get(old.gateway + "/.well-known/openid-configuration", timeout=10).json()
        person = identity()
        app = await enrolled_app(old, create_kiosk(old), tmp_path, "phone", person=person)
        rp_key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
        rp = register(old, client_name="Harbour Marine Department", scope=SCOPE, formfill_fields=FIELDS,
                      encryption_jwk=json.loads(rp_key.export_public()), agency_events=True)
        first, old_pdf = await signed_pdf(old, metadata, rp, app, "Application for a harbour berth, before")
        old_root = published_root(old)
        device_token = await app.device_token()
        # The completion is on the old broker (its outbox row is marked sent): only the replay can bring it back.
        await eventually(lambda: completed_on(old, rp["client_id"], first["request_id"]), timeout_s=30)

        # -- backup while it runs, keys apart from the data; then it stops ----------------------------------
        saved = devstack_cli(before.config, "backup", str(folders["backup"]), "--keys-dir", str(folders["keys"]))
        assert saved.returncode == 0, saved.stdout + saved.stderr
        manifest = json.loads((folders["backup"] / "manifest.json").read_text())
        assert set(manifest["databases"]) == {"auth", "formfill", "notify", "signing"}
        assert manifest["hsm"]["keys_in_token"] >= 4  # root, issuing CA, TSA and the citizen's key
        assert not (folders["backup"] / "secrets.json").exists() and (folders["keys"] / "secrets.json").exists()
        await asyncio.to_thread(before.down)

        # -- a fresh platform: new folder, broker and database; the same public address --------------------
        ports = StackConfig.free_ports(folders["after"])
        after = DevStack(StackConfig(dev_dir=folders["after"], kafka_port=ports.kafka_port, mongo_port=ports.mongo_port,
                                     smtp_port=ports.smtp_port,
                                     service_ports=before.config.service_ports, worker_ports=before.config.worker_ports,
                                     metrics_ports=before.config.metrics_ports))
        await asyncio.to_thread(after.up_infra)
        without_keys = devstack_cli(after.config, "restore", str(folders["backup"]))
        assert without_keys.returncode == 1 and "secrets.json is missing" in without_keys.stderr, without_keys.stderr
        restored = devstack_cli(after.config, "restore", str(folders["backup"]), "--keys-dir", str(folders["keys"]))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert json.loads(restored.stdout)["replayed_events"]["harbour_signing"] >= 1
        await asyncio.to_thread(after.up_services)
        new = Running(after)
        await routing_to_every_service(new)

        # The old signature verifies: the same root is published, our API and poppler agree.
        assert published_root(new) == old_root
        verdict = verified_by_the_api(new, old_pdf)
        assert verdict["valid"] and verdict["signatures"][0]["revocation"]["status"] == "good", verdict
        (tmp_path / "trust").mkdir()
        trust = trust_files(new, tmp_path / "trust")
        (tmp_path / "old.pdf").write_bytes(old_pdf)
        report = pdfsig(trust, tmp_path / "old.pdf")
        assert "Signature Validation: Signature is Valid." in report and "Certificate Validation: Certificate is Trusted." in report, report

        # The phone's device token from before the backup is still good (auth's token keys came back).
        approvals = requests.get(new.gateway + "/v1/approvals",
                                 headers=device_auth(app, device_token, "GET", new.gateway + "/v1/approvals"), timeout=10)
        assert approvals.status_code == 200, approvals.text

        # A new login and a form fill: the account, device, client and the vault (under the restored KEK).
        token = await logged_in_token(metadata, rp, app, SCOPE)
        request = await created(new, token, [("name_en", True), ("email", True)])
        await app.approve((await formfill_prompt(app, request["request_id"]))["approval_id"])
        await wait_for_status(new, token, request["request_id"], "approved")
        release = formfill_result(new, token, request["request_id"])
        assert release.status_code == 200, release.text
        assert released_fields(release.text, rp_key) == {"name_en": person["name_en"], "email": person["email"]}

        # A new signature with the citizen's restored HSM key: the certificate issued before the backup.
        second, new_pdf = await signed_pdf(new, metadata, rp, app, "Application for a harbour berth, after")
        assert second["certificate_serial"] == first["certificate_serial"]
        assert verified_by_the_api(new, new_pdf)["valid"]
        (tmp_path / "new.pdf").write_bytes(new_pdf)
        assert "Signature Validation: Signature is Valid." in pdfsig(trust, tmp_path / "new.pdf")

        # The completion the old broker had is published again to the new one (consumers deduplicate by id).
        await eventually(lambda: completed_on(new, rp["client_id"], first["request_id"]), timeout_s=30)
    finally:
        for stack in (after, before):
            if stack is not None:
                await asyncio.to_thread(stack.down)

"""`make up` / `make down` for real: the dev stack's own command on free ports in a private folder.

Brings up broker, database and the five services as processes, checks them
through the gateway, and proves `down` leaves no process behind.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.devstack import SERVICES, DevStack, StackConfig
from libs.devstack import processes
from libs.devstack.secrets import dev_secrets
from libs.devstack.config import REPO_ROOT
from services.auth.events import CONSUMER_GROUP as AUTH_GROUP
from services.formfill.events import CONSUMER_GROUP as FORMFILL_GROUP
from services.notify.events import CONSUMER_GROUP as NOTIFY_GROUP
from services.signing.events import CONSUMER_GROUP as SIGNING_GROUP

pytestmark = pytest.mark.e2e
CONSUMER_GROUPS = {"auth": AUTH_GROUP, "formfill": FORMFILL_GROUP, "notify": NOTIFY_GROUP, "signing": SIGNING_GROUP}


def devstack(command: str, config: StackConfig) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HARBOUR_DEV_DIR": str(config.dev_dir),
        "HARBOUR_KAFKA_PORT": str(config.kafka_port),
        "HARBOUR_MONGO_PORT": str(config.mongo_port),
        "HARBOUR_SMTP_PORT": str(config.smtp_port),
        **{f"HARBOUR_{name.upper()}_PORT": str(port) for name, port in config.service_ports.items()},
        **{f"HARBOUR_{name.upper().replace('-', '_')}_PORT": str(port) for name, port in config.worker_ports.items()},
        **{f"HARBOUR_{name.upper().replace('-', '_')}_METRICS_PORT": str(port) for name, port in config.metrics_ports.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "libs.devstack", command],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = StackConfig.free_ports(tmp_path_factory.mktemp("devstack"))
    up = devstack("up", config)
    assert up.returncode == 0, up.stdout + up.stderr
    stack = DevStack(config)
    yield stack, up.stdout
    devstack("down", config)


def test_up_starts_everything_and_prints_the_urls(stack):
    stack, output = stack
    assert "Harbour ID is up in" in output
    app = stack.config.service_url("gateway").replace("127.0.0.1", "localhost") + "/app/"
    assert f"citizen web app    {app}" in output
    with urllib.request.urlopen(app, timeout=10) as page:  # the newcomer's link opens the app
        assert page.status == 200 and "Content-Security-Policy" in page.headers
    for name in SERVICES:
        assert stack.config.service_url(name) in output
        assert stack.config.metrics_url(name) in output
    pids = stack.status()
    assert all(pid is not None for pid in pids.values()), pids


def test_gateway_answers_healthz_and_is_ready_with_its_upstreams_reported(stack):
    stack, _ = stack
    gateway = stack.config.service_url("gateway")
    status, _, body = get(gateway + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = get(gateway + "/readyz")
    assert status == 200
    # Its own readiness: the revocation list the edge follows (libs/revocation). Each upstream's health is
    # reported beside it (probed every 2 s), never a check: one dead service must not make every gateway unready.
    assert json.loads(body)["checks"] == {"revocations": "ok"}
    every_upstream_up = {"auth": "ok", "formfill": "ok", "notify": "ok", "signing": "ok"}
    processes.wait_until(lambda: json.loads(get(gateway + "/readyz")[2])["upstreams"] == every_upstream_up,
                         timeout_s=10, what="every upstream reported up")


def test_every_service_is_ready_and_serves_prometheus_metrics_on_its_internal_port_only(stack):
    stack, _ = stack
    for name in SERVICES:
        url = stack.config.service_url(name)
        status, _, body = get(url + "/readyz")
        assert status == 200, (name, body)
        if name != "gateway":
            # signing also checks that its HSM token still holds the authorities' keys.
            # signing: its PDF/CMS parsing sandbox's worker pool too.
            extra = {"hsm": "ok", "parsing-workers": "ok"} if name == "signing" else {}
            # Every service follows the revocations (libs/revocation); auth, which publishes them, for its approvals stream.
            extra["revocations"] = "ok"
            # Each consumer is ready while its loop goes round, the outbox relay while its passes complete.
            extra |= {f"consumer:{CONSUMER_GROUPS[name]}": "ok", "outbox-relay": "ok"}
            if name == "signing":  # its audit ledger: the consumer of audit.events and the appender's loop
                extra |= {"consumer:signing-audit-ledger": "ok", "audit-ledger": "ok"}
            assert json.loads(body)["checks"] == {"mongodb": "ok", "kafka": "ok", **extra}
        assert get(url + "/metrics")[0] == 404, name  # not on the public listener
        status, headers, body = get(stack.config.metrics_url(name))
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=")
        families = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"harbour_http_requests", "harbour_http_request_duration_seconds"} <= families


def test_gateway_passes_requests_through_with_the_request_id(stack):
    stack, _ = stack
    gateway = stack.config.service_url("gateway")
    status, headers, body = get(gateway + "/oidc/authorize/unknown-tx/status?k=x", {"X-Request-Id": "e2e-trace-1"})
    # auth's own answer (no such login: a 404 problem) comes back through the gateway.
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")
    assert json.loads(body)["instance"] == "/oidc/authorize/unknown-tx/status"
    assert headers["X-Request-Id"] == "e2e-trace-1"
    auth_log = (stack.log_dir / "auth.log").read_text()
    assert any(
        line.startswith("{") and json.loads(line).get("request_id") == "e2e-trace-1"
        for line in auth_log.splitlines()
    )


def test_up_twice_is_safe(stack):
    stack, _ = stack
    before = stack.status()
    again = devstack("up", stack.config)
    assert again.returncode == 0, again.stderr
    assert stack.status() == before


DEMO_SITE = f"http://127.0.0.1:{processes.free_port()}"


def test_seed_writes_demo_clients_and_citizens_with_working_devices(stack):
    stack, _ = stack
    env = {**os.environ, "HARBOUR_DEV_DIR": str(stack.dev_dir), "HARBOUR_DEMO_SITE_URL": DEMO_SITE}
    seeded = subprocess.run([sys.executable, "-m", "clients.seed"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    path = stack.dev_dir / "seed.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    seed = json.loads(path.read_text())
    kinds = sorted(c["kind"] for c in seed["clients"].values())
    assert kinds == ["agency", "kiosk", "relying_party", "relying_party", "relying_party"]
    assert seed["clients"]["utility"]["redirect_uris"] == [f"{DEMO_SITE}/callback"]
    # Every seeded relying party and agency reads its own topic (the README's tour); the kiosk publishes nothing there.
    assert {key for key, c in seed["clients"].items() if c["agency_events"]} == {"bank", "tax", "utility", "transport"}
    assert all(c["client_id"] and (c["client_secret"] or c["private_key_file"]) for c in seed["clients"].values())
    assert sorted(c["assurance"] for c in seed["citizens"].values()) == ["basic", "plus", "plus"]
    # The web app's demo citizen is enrolled at the kiosk with no phone: `make demo` binds the web app each run.
    assert seed["citizens"]["lee"]["profile"] is None and seed["citizens"]["lee"]["device_id"] is None
    assert oct(Path(seed["clients"]["bank"]["private_key_file"]).stat().st_mode & 0o777) == "0o600"
    subs = [set(c["sub"].values()) for c in seed["citizens"].values()]
    for citizen in seed["citizens"].values():
        assert {"id_number", "name_en", "date_of_birth"} <= citizen["enrolled_with"].keys()
        assert set(citizen["sub"]) == set(seed["clients"])
        assert len(set(citizen["sub"].values())) == len(seed["clients"])  # pairwise: one sub per client
        if citizen["profile"] is None:
            continue
        devices = subprocess.run(
            [sys.executable, "-m", "clients.citizen_app", "--profile", citizen["profile"], "devices"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert devices.returncode == 0, devices.stderr
        assert json.loads(devices.stdout)["current_device_id"] == citizen["device_id"]
    assert not subs[0] & subs[1]
    again = subprocess.run([sys.executable, "-m", "clients.seed"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "keeping it" in again.stdout
    assert json.loads(path.read_text()) == seed


def test_demo_walks_the_journey_and_leaves_the_site_running(stack):
    """`make demo` after `make seed`: the journey headless, step by step (the web app as the phone, bound with a new
    kiosk slip), then the site stays up until stopped."""
    stack, _ = stack
    env = {**os.environ, "HARBOUR_DEV_DIR": str(stack.dev_dir), "HARBOUR_DEMO_SITE_URL": DEMO_SITE}
    seeded = subprocess.run([sys.executable, "-m", "clients.seed"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    demo = subprocess.run([sys.executable, "-m", "clients.relying_party.demo"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=150)
    try:
        assert demo.returncode == 0, demo.stdout + demo.stderr
        for step in range(0, 11):
            assert f"  {step}. " in demo.stdout, demo.stdout
        assert f"open {DEMO_SITE} in a browser" in demo.stdout
        assert "0. The phone: the web app at http://localhost:" in demo.stdout, demo.stdout
        assert list((stack.dev_dir / "screenshots" / "demo").glob("phone-*-message-en.png"))  # the phone read the confirmation
        # A new kiosk slip for binding a real browser's web app by hand.
        slip = subprocess.run([sys.executable, "-m", "clients.relying_party.demo", "--slip"], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert slip.returncode == 0 and re.search(r"activation code: \w{5}-\w{5}", slip.stdout), slip.stdout + slip.stderr
        with urllib.request.urlopen(DEMO_SITE + "/", timeout=10) as home:  # still serving after the command returned
            assert home.status == 200 and "Harbour Power" in home.read().decode()
    finally:
        stopped = subprocess.run([sys.executable, "-m", "clients.relying_party.demo", "--stop"], cwd=REPO_ROOT, env=env,
                                 capture_output=True, text=True, timeout=60)
    assert stopped.stdout.strip() == "demo site stopped"
    assert not processes.port_open("127.0.0.1", int(DEMO_SITE.rsplit(":", 1)[1]))


def test_a_failed_up_stops_what_it_started(tmp_path):
    config = StackConfig.free_ports(tmp_path / "broken")
    config.dev_dir.mkdir(parents=True)
    # A service that cannot start: auth refuses a key-encryption key of the wrong size.
    secrets = dev_secrets(config.dev_dir) | {"HARBOUR_AUTH_KEK": "dev-1:dG9vLXNob3J0"}
    (config.dev_dir / "secrets.json").write_text(json.dumps(secrets))
    up = devstack("up", config)
    assert up.returncode == 1
    assert "auth exited at start" in up.stderr
    assert all(pid is None for pid in DevStack(config).status().values())
    assert not processes.port_open("127.0.0.1", config.kafka_port)
    assert not processes.port_open("127.0.0.1", config.mongo_port)


def test_up_refuses_a_port_another_program_listens_on_and_starts_nothing(tmp_path):
    """A MongoDB of the machine's own on the database's port: our server could not bind, yet the port answered, so
    `up` went on and the services wrote into that other program. Now `up` says so and starts nothing."""
    config = StackConfig.free_ports(tmp_path / "taken")
    with socket.create_server(("127.0.0.1", config.mongo_port)) as other_program:
        other_program.listen()
        up = devstack("up", config)
    assert up.returncode == 1
    assert f"another program already listens where this stack's mongodb on {config.mongo_port} would" in up.stderr
    assert all(pid is None for pid in DevStack(config).status().values())
    assert not processes.port_open("127.0.0.1", config.kafka_port)

    # Another checkout's gateway on ours: it would answer our /readyz while our gateway, unable to bind, died.
    with socket.create_server(("127.0.0.1", config.service_ports["gateway"])) as other_gateway:
        other_gateway.listen()
        up = devstack("up", config)
    assert up.returncode == 1
    assert f"another program already listens where this stack's gateway on {config.service_ports['gateway']} would" in up.stderr
    assert all(pid is None for pid in DevStack(config).status().values())  # the broker and database it started: stopped
    assert not processes.port_open("127.0.0.1", config.mongo_port)


def test_up_after_a_crash_restarts_what_is_down_and_leaves_the_rest_running(stack):
    """After `kill -9` of a service with consumers, `make up` brings it back (it used to wait for the dead consumer's
    group member forever, fail, and stop the whole stack); if the restart itself fails, the rest keeps running."""
    stack, _ = stack
    before = stack.status()
    stack.crash("auth")
    again = devstack("up", stack.config)
    assert again.returncode == 0, again.stdout + again.stderr
    after = stack.status()
    assert after["auth"] not in (None, before["auth"])
    assert {n: p for n, p in after.items() if n != "auth"} == {n: p for n, p in before.items() if n != "auth"}

    # Auth crashes again and cannot start this time (a key-encryption key of the wrong size): `up` fails,
    # stops only what it started, and everything else stays up.
    secrets_file = stack.dev_dir / "secrets.json"
    good = secrets_file.read_text()
    stack.crash("auth")
    secrets_file.write_text(json.dumps(json.loads(good) | {"HARBOUR_AUTH_KEK": "dev-1:dG9vLXNob3J0"}))
    try:
        failed = devstack("up", stack.config)
    finally:
        secrets_file.write_text(good)
    assert failed.returncode == 1 and "auth exited at start" in failed.stderr
    still = stack.status()
    assert still["auth"] is None
    assert {n: p for n, p in still.items() if n != "auth"} == {n: p for n, p in after.items() if n != "auth"}
    assert devstack("up", stack.config).returncode == 0
    assert stack.status()["auth"] is not None


# Last in this module: it takes the module's stack down (the fixture's own `down` then finds nothing to stop).
def test_down_leaves_no_process_behind(stack):
    stack, _ = stack
    config = stack.config
    pids = [pid for pid in stack.status().values()]
    assert all(pid is not None for pid in pids)
    down = devstack("down", config)
    assert down.returncode == 0
    assert "stopped: notify-dispatcher, gateway, signing, notify, formfill, auth, smtp, mongodb, kafka" in down.stdout
    deadline = time.monotonic() + 10
    while any(processes.is_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if processes.is_alive(pid)]
    assert not any(processes.port_open("127.0.0.1", port) for port in config.service_ports.values())
    assert all(pid is None for pid in stack.status().values())
    # Graceful: each service finished its shutdown (cleanup contexts ran) rather than being killed.
    for name in (*SERVICES, "notify-dispatcher"):
        last = json.loads((stack.log_dir / f"{name}.log").read_text().splitlines()[-1])
        assert last["event"] == "stopped", (name, last)
    assert (stack.log_dir / "mongodb.log").read_text().rstrip().endswith("mongodb-protocol server stopped")

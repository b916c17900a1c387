"""A real Prometheus (Debian's package, `make test` installs it) scrapes the test platform's processes with the
project's alert rules, and an induced fault fires the matching alert.

Each Prometheus here is the test's own: a free port, a data directory and a configuration under the test's temporary
directory, scraping every second and evaluating every second, stopped by its PID at the end. Its rule file is the
PrometheusRule's spec with one change: every `for:` is shortened to PENDING_FOR (a test cannot wait the real minutes);
expressions (thresholds included), labels and annotations are the project's.

The faults never touch the shared platform (other tests need it):
- a killed process: a second gateway the module starts for itself on free ports, scraped as one more instance of
  the `gateway` job (as a second replica would be), killed with SIGKILL → HarbourServiceDown;
- a stuck consumer: a formfill process on a broker and a database of its own, whose database is stalled with
  SIGSTOP → its consumer stops going round → HarbourConsumerStuck (after the rule's 30 s), and after SIGCONT the
  alert clears.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from libs.devstack import SERVICES, DevStack, StackConfig, processes
from libs.devstack.config import REPO_ROOT, WORKERS
from libs.devstack.processes import ProcessSpec

from ..support.alert_rules import binary, write_rule_file
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
PENDING_FOR = "2s"


@dataclass(frozen=True)
class Monitoring:
    url: str  # the Prometheus
    spare_gateway: ProcessSpec  # the process the fault kills
    spare_target: str

    def api(self, path: str, **params) -> dict:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self, name: str, state: str = "firing") -> list[dict]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name and a["state"] == state]

    def targets_up(self) -> dict[str, str]:
        return {t["scrapeUrl"]: t["health"] for t in self.api("targets", state="active")["activeTargets"]}


@contextmanager
def prometheus(directory: Path, jobs: dict[str, list[str]]) -> Iterator[str]:
    """A Prometheus on a free port scraping `jobs` (job name → host:port targets) with the project's rules."""
    port = processes.free_port()
    data = directory / "data"
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(write_rule_file(directory, pending_for=PENDING_FOR))],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()],
    }))
    spec = ProcessSpec(
        name="prometheus",
        argv=[binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data}",
              f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        marker=str(data), cwd=directory, env={},
        log_file=directory / "prometheus.log", pid_file=directory / "prometheus.pid",
    )
    pid = processes.start(spec)
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(lambda: processes.http_ok(url + "/-/ready") or not processes.is_alive(pid),
                             timeout_s=30, what="prometheus to be ready")
        assert processes.is_alive(pid), (directory / "prometheus.log").read_text()
        yield url
    finally:
        processes.stop(spec.pid_file, spec.marker)


def spare_gateway_spec(platform, directory: Path) -> tuple[ProcessSpec, int, int]:
    """A second gateway process in front of the platform's services, on ports of its own."""
    port, metrics_port = processes.free_port(), processes.free_port()
    env = {**platform.stack.config.service_env(), "HARBOUR_GATEWAY_PORT": str(port),
           "HARBOUR_GATEWAY_METRICS_PORT": str(metrics_port)}
    spec = ProcessSpec(name="spare-gateway", argv=[sys.executable, "-m", "services.gateway"], marker="services.gateway",
                       cwd=REPO_ROOT, env=env, log_file=directory / "spare-gateway.log",
                       pid_file=directory / "spare-gateway.pid")
    return spec, port, metrics_port


@pytest.fixture(scope="module")
def monitoring(platform, tmp_path_factory) -> Iterator[Monitoring]:
    directory = tmp_path_factory.mktemp("prometheus")
    spare, port, metrics_port = spare_gateway_spec(platform, directory)
    pid = processes.start(spare)
    try:
        processes.wait_until(lambda: processes.http_ok(f"http://127.0.0.1:{port}/readyz") or not processes.is_alive(pid),
                             timeout_s=60, what="the spare gateway to be ready")
        assert processes.is_alive(pid), spare.log_file.read_text()
        config = platform.stack.config
        jobs = {name: [f"127.0.0.1:{config.metrics_ports[name]}"] for name in (*SERVICES, *WORKERS)}
        spare_target = f"127.0.0.1:{metrics_port}"
        jobs["gateway"].append(spare_target)
        with prometheus(directory, jobs) as url:
            yield Monitoring(url, spare, spare_target)
    finally:
        processes.stop(spare.pid_file, spare.marker)


async def every_target_up(monitoring: Monitoring) -> dict[str, str]:
    expected = len(SERVICES) + len(WORKERS) + 1
    return await eventually(lambda: (t := monitoring.targets_up()) and len(t) == expected
                            and set(t.values()) == {"up"} and t, timeout_s=30, interval_s=0.5)


async def test_prometheus_scrapes_every_process_and_the_consumer_lag_of_every_consumer(monitoring):
    targets = await every_target_up(monitoring)
    assert len(targets) == len(SERVICES) + len(WORKERS) + 1

    def lag_by_service() -> set[str]:
        return {series["metric"]["service"] for series in monitoring.api("query", query="harbour_consumer_lag")["result"]}

    consumers = {"auth", "formfill", "notify", "signing", "notify-dispatcher"}
    assert await eventually(lambda: consumers <= lag_by_service(), timeout_s=30, interval_s=0.5)
    # The rules loaded are the project's, and nothing is down or lagging on a healthy platform.
    rules = {rule["name"] for group in monitoring.api("rules")["groups"] for rule in group["rules"]}
    assert {"HarbourServiceDown", "HarbourConsumerLag"} <= rules
    assert monitoring.alerts("HarbourServiceDown", "pending") + monitoring.alerts("HarbourServiceDown") == []
    assert monitoring.alerts("HarbourConsumerLag", "pending") + monitoring.alerts("HarbourConsumerLag") == []


async def test_a_killed_process_fires_harbour_service_down_for_it_alone(monitoring):
    await every_target_up(monitoring)
    assert monitoring.alerts("HarbourServiceDown", "pending") + monitoring.alerts("HarbourServiceDown") == []
    pid = processes.running_pid(monitoring.spare_gateway.pid_file, monitoring.spare_gateway.marker)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: not processes.is_alive(pid), timeout_s=10)

    firing = await eventually(lambda: monitoring.alerts("HarbourServiceDown"), timeout_s=60, interval_s=0.5)
    (alert,) = firing
    assert alert["labels"] == {"alertname": "HarbourServiceDown", "job": "gateway",
                               "instance": monitoring.spare_target, "severity": "page"}
    assert alert["annotations"]["summary"] == (f"gateway at {monitoring.spare_target} has not answered "
                                               "Prometheus' scrapes for a minute")
    assert alert["annotations"]["runbook_url"].endswith("#harbourservicedown")
    # The platform's own processes are all still up.
    down = [url for url, health in monitoring.targets_up().items() if health != "up"]
    assert down == [f"http://{monitoring.spare_target}/metrics"]


@pytest.fixture
def formfill_on_its_own_infrastructure() -> Iterator[tuple[DevStack, str]]:
    """formfill alone on a broker and a database of its own (free ports, `.dev/prometheus-stuck-<pid>/`), so that
    stalling its database stalls nothing else; yields the stack and formfill's metrics target."""
    config = StackConfig.free_ports(REPO_ROOT / ".dev" / f"prometheus-stuck-{os.getpid()}")
    config.db_prefix = f"s{uuid.uuid4().hex[:6]}_"
    stack = DevStack(config)
    mongo = stack.mongo_spec()
    try:
        stack.up_infra()
        spec = stack.service_spec("formfill")
        pid = processes.start(spec)
        ready = config.service_url("formfill") + "/readyz"
        processes.wait_until(lambda: processes.http_ok(ready) or not processes.is_alive(pid),
                             timeout_s=60, what="the isolated formfill to be ready")
        assert processes.is_alive(pid), spec.log_file.read_text()
        yield stack, f"127.0.0.1:{config.metrics_ports['formfill']}"
    finally:
        if (mongo_pid := processes.running_pid(mongo.pid_file, mongo.marker)) is not None:
            os.kill(mongo_pid, signal.SIGCONT)  # a stopped process would not act on the SIGTERM that stops it
        stack.down()
        shutil.rmtree(config.dev_dir, ignore_errors=True)


@pytest.mark.timeout(240)
async def test_a_consumer_stalled_on_its_database_fires_harbour_consumer_stuck_until_it_moves_again(
        formfill_on_its_own_infrastructure, tmp_path):
    stack, target = formfill_on_its_own_infrastructure
    with prometheus(tmp_path, {"formfill": [target]}) as url:
        monitoring = Monitoring(url, stack.service_spec("formfill"), target)

        def progress() -> list[dict]:
            query = "harbour_consumer_last_progress_timestamp_seconds"
            return monitoring.api("query", query=query)["result"]

        (series,) = await eventually(progress, timeout_s=30, interval_s=0.5)
        assert series["metric"]["service"] == "formfill"
        assert monitoring.alerts("HarbourConsumerStuck", "pending") + monitoring.alerts("HarbourConsumerStuck") == []

        mongo = stack.mongo_spec()
        mongo_pid = processes.running_pid(mongo.pid_file, mongo.marker)
        assert mongo_pid is not None
        os.kill(mongo_pid, signal.SIGSTOP)
        stalled = time.monotonic()
        try:
            (alert,) = await eventually(lambda: monitoring.alerts("HarbourConsumerStuck"), timeout_s=90, interval_s=1)
            fired = time.monotonic()
            assert alert["labels"] == {"alertname": "HarbourConsumerStuck", "severity": "page", "job": "formfill",
                                       "instance": target, "service": "formfill", "group": series["metric"]["group"]}
            assert alert["annotations"]["summary"].startswith(
                f"formfill at {target}: consumer {series['metric']['group']} has made no progress for ")
            # The process itself still answers: it is not down, and it says it is not ready.
            assert monitoring.alerts("HarbourServiceDown", "pending") + monitoring.alerts("HarbourServiceDown") == []
            readiness = requests.get(stack.config.service_url("formfill") + "/readyz", timeout=10)
            assert readiness.status_code == 503
        finally:
            os.kill(mongo_pid, signal.SIGCONT)
        resumed = time.monotonic()
        # The database back, the consumer moves again and the alert clears by itself.
        await eventually(lambda: not monitoring.alerts("HarbourConsumerStuck", "pending") + monitoring.alerts("HarbourConsumerStuck"),
                         timeout_s=90, interval_s=1)
        print(f"\nHarbourConsumerStuck fired {fired - stalled:.0f} s after the database stalled (the rule allows 30 s "
              f"without progress) and cleared {time.monotonic() - resumed:.0f} s after it resumed")

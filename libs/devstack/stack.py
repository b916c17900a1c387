"""The local platform: broker, database and the five services on loopback.

Everything lives under one folder (`.dev/` by default): data, logs and PID
files. `up` is safe to call twice (what runs is left alone); `down` stops
exactly the processes whose PID files it finds, by PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import noida_db

from libs.events.kafka import ensure_topics
from libs.events.topics import ALL_TOPICS
from libs.service.settings import (
    DEFAULT_KAFKA_PORT,
    DEFAULT_METRICS_PORTS,
    DEFAULT_MONGO_PORT,
    DEFAULT_PORTS,
    DEFAULT_WORKER_PORTS,
    kafka_bootstrap_at,
    mongo_uri_at,
)

from . import processes, softhsm
from .processes import ProcessSpec
from .secrets import dev_secrets

REPO_ROOT = Path(__file__).resolve().parents[2]
# Start order: the gateway last, so its upstreams are there when it becomes ready.
SERVICES = ("auth", "formfill", "notify", "signing", "gateway")
# Workers: processes of a service that serve no API (health and metrics only), started after the services.
WORKERS = {"notify-dispatcher": "services.notify.dispatcher"}


def dev_dir_from_env() -> Path:
    """The stack's folder: HARBOUR_DEV_DIR, or `.dev/` in the repository."""
    return Path(os.environ.get("HARBOUR_DEV_DIR", REPO_ROOT / ".dev")).resolve()


@dataclass
class StackConfig:
    dev_dir: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    mongo_port: int = DEFAULT_MONGO_PORT
    service_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    worker_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKER_PORTS))
    # Each process's internal /metrics listener (services and workers), apart from its public port.
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_METRICS_PORTS))
    # Databases are named <prefix><service>; tests use their own prefix on a shared server.
    db_prefix: str = "harbour_"
    # More environment for every service (tests raise the gateway's rate limits, say).
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "StackConfig":
        ports = {name: int(os.environ.get(f"HARBOUR_{name.upper()}_PORT", port)) for name, port in DEFAULT_PORTS.items()}
        return cls(
            dev_dir=dev_dir_from_env(),
            kafka_port=int(os.environ.get("HARBOUR_KAFKA_PORT", DEFAULT_KAFKA_PORT)),
            mongo_port=int(os.environ.get("HARBOUR_MONGO_PORT", DEFAULT_MONGO_PORT)),
            service_ports=ports,
            worker_ports={name: int(os.environ.get(f"HARBOUR_{_env_name(name)}_PORT", port))
                          for name, port in DEFAULT_WORKER_PORTS.items()},
            metrics_ports={name: int(os.environ.get(f"HARBOUR_{_env_name(name)}_METRICS_PORT", port))
                           for name, port in DEFAULT_METRICS_PORTS.items()},
        )

    @classmethod
    def free_ports(cls, dev_dir: Path) -> "StackConfig":
        """A private stack on free ports, for tests that must not touch a developer's stack."""
        return cls(
            dev_dir=dev_dir.resolve(),
            kafka_port=processes.free_port(),
            mongo_port=processes.free_port(),
            service_ports={name: processes.free_port() for name in SERVICES},
            worker_ports={name: processes.free_port() for name in WORKERS},
            metrics_ports={name: processes.free_port() for name in (*SERVICES, *WORKERS)},
        )

    @property
    def kafka_bootstrap(self) -> str:
        return kafka_bootstrap_at(self.kafka_port)

    @property
    def mongo_uri(self) -> str:
        return mongo_uri_at(self.mongo_port)

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[name]}"

    def service_env(self) -> dict[str, str]:
        """The environment every service process gets: where the infrastructure and its peers are."""
        env = {
            "HARBOUR_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "HARBOUR_MONGO_URI": self.mongo_uri,
            "HARBOUR_ISSUER": self.service_url("gateway"),
            # The local platform is a sandbox: citizens may self-register (assurance basic).
            "HARBOUR_SANDBOX": "true",
            # Agencies' callbacks and clients' jwks_uri may be on this machine (never private or link-local ranges).
            "HARBOUR_OUTBOUND_ALLOW_LOOPBACK": "1",
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            **dev_secrets(self.dev_dir),
            # signing's HSM: this folder's SoftHSM2 token (made by DevStack.up_services).
            "SOFTHSM2_CONF": str(softhsm.config_path(self.dev_dir)),
            **self.extra_env,
        }
        if "HARBOUR_SIGNING_PKCS11_MODULE" not in env:
            try:
                env["HARBOUR_SIGNING_PKCS11_MODULE"] = softhsm.module_path()
            except softhsm.SoftHSMMissing:
                pass  # signing then refuses to start, naming the missing setting
        for name in SERVICES:
            env[f"HARBOUR_{name.upper()}_DB"] = f"{self.db_prefix}{name}"
            env[f"HARBOUR_{name.upper()}_PORT"] = str(self.service_ports[name])
            env[f"HARBOUR_{name.upper()}_URL"] = self.service_url(name)
        for name, port in self.worker_ports.items():
            env[f"HARBOUR_{_env_name(name)}_PORT"] = str(port)
        for name, port in self.metrics_ports.items():
            env[f"HARBOUR_{_env_name(name)}_METRICS_PORT"] = str(port)
        return env

    def worker_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.worker_ports[name]}"

    def metrics_url(self, name: str) -> str:
        """Where Prometheus scrapes `name` (a service or a worker): its internal listener, not its public port."""
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"


def _env_name(process: str) -> str:
    return process.upper().replace("-", "_")


def _noida_binary() -> str:
    binary = Path(noida_db.__file__).parent / "noida-db"
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(binary)


class DevStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.dev_dir = config.dev_dir
        self.run_dir = self.dev_dir / "run"
        self.log_dir = self.dev_dir / "logs"

    # -- process specs -------------------------------------------------------

    def kafka_spec(self) -> ProcessSpec:
        data_dir = self.dev_dir / "kafka"
        return ProcessSpec(
            name="kafka",
            argv=[
                _noida_binary(), "start", "--only", "kafka", "--host", "127.0.0.1",
                "--kafka-port", str(self.config.kafka_port), "--data-dir", str(data_dir),
            ],
            marker=str(data_dir),
            cwd=data_dir,
            env={},
            log_file=self.log_dir / "kafka.log",
            pid_file=self.run_dir / "kafka.pid",
        )

    def mongo_spec(self) -> ProcessSpec:
        work_dir = self.dev_dir / "mongo"
        data_dir = work_dir / "data"
        return ProcessSpec(
            name="mongodb",
            argv=[
                sys.executable, "-m", "libs.devstack.mongo_server",
                "--port", str(self.config.mongo_port), "--data-dir", str(data_dir),
            ],
            marker=str(data_dir),
            cwd=work_dir,
            env={"PYTHONPATH": str(REPO_ROOT)},
            log_file=self.log_dir / "mongodb.log",
            pid_file=self.run_dir / "mongodb.pid",
        )

    def service_spec(self, name: str) -> ProcessSpec:
        return ProcessSpec(
            name=name,
            argv=[sys.executable, "-m", f"services.{name}"],
            marker=f"services.{name}",
            cwd=REPO_ROOT,
            env=self.config.service_env(),
            log_file=self.log_dir / f"{name}.log",
            pid_file=self.run_dir / f"{name}.pid",
        )

    def worker_spec(self, name: str) -> ProcessSpec:
        return ProcessSpec(
            name=name,
            argv=[sys.executable, "-m", WORKERS[name]],
            marker=WORKERS[name],
            cwd=REPO_ROOT,
            env=self.config.service_env(),
            log_file=self.log_dir / f"{name}.log",
            pid_file=self.run_dir / f"{name}.pid",
        )

    def all_specs(self) -> list[ProcessSpec]:
        return [self.kafka_spec(), self.mongo_spec(), *(self.service_spec(n) for n in SERVICES), *(self.worker_spec(n) for n in WORKERS)]

    # -- life cycle ----------------------------------------------------------

    def up_infra(self, timeout_s: float = 60.0) -> None:
        for spec, port in ((self.kafka_spec(), self.config.kafka_port), (self.mongo_spec(), self.config.mongo_port)):
            pid = processes.start(spec)
            processes.wait_until(
                lambda: processes.port_open("127.0.0.1", port) or not processes.is_alive(pid),
                timeout_s=timeout_s,
                what=f"{spec.name} on port {port}",
            )
            if not processes.is_alive(pid):
                raise RuntimeError(f"{spec.name} exited at start; see {spec.log_file}")
        asyncio.run(ensure_topics(self.config.kafka_bootstrap, ALL_TOPICS))
        self._write_state()

    def up_services(self, timeout_s: float = 90.0) -> None:
        secrets = dev_secrets(self.dev_dir)
        softhsm.ensure_token(self.dev_dir, label=secrets["HARBOUR_SIGNING_TOKEN_LABEL"],
                             so_pin=secrets["HARBOUR_SIGNING_SO_PIN"], pin=secrets["HARBOUR_SIGNING_HSM_PIN"])
        # All start at once, then each is waited for: their start-ups overlap.
        started = {name: processes.start(self.service_spec(name)) for name in SERVICES}
        for name, pid in started.items():
            self._wait_ready(name, pid, self.config.service_url(name), timeout_s)
        for name in WORKERS:
            self.up_worker(name, timeout_s)

    def up_worker(self, name: str, timeout_s: float = 90.0) -> int:
        """Start one worker (again, after a test killed it) and wait until it is ready."""
        pid = processes.start(self.worker_spec(name))
        self._wait_ready(name, pid, self.config.worker_url(name), timeout_s)
        return pid

    def _wait_ready(self, name: str, pid: int, base_url: str, timeout_s: float) -> None:
        url = base_url + "/readyz"
        processes.wait_until(
            lambda: processes.http_ok(url) or not processes.is_alive(pid),
            timeout_s=timeout_s,
            what=f"{name} to be ready at {url}",
        )
        if not processes.is_alive(pid):
            raise RuntimeError(f"{name} exited at start; see {self.log_dir / (name + '.log')}")

    def up(self) -> float:
        """Start everything; if any part fails to come up, stop what was started and re-raise."""
        started = time.monotonic()
        try:
            self.up_infra()
            self.up_services()
        except BaseException:
            self.down()
            raise
        return time.monotonic() - started

    def down(self) -> list[str]:
        """Stop services first (they flush their work), then the database and the broker."""
        stopped = self.down_services()
        for spec in (self.mongo_spec(), self.kafka_spec()):
            if processes.stop(spec.pid_file, spec.marker):
                stopped.append(spec.name)
        (self.dev_dir / "stack.json").unlink(missing_ok=True)
        return stopped

    def down_services(self) -> list[str]:
        """Stop the services, the gateway first, so no request reaches a stopped upstream."""
        stopped = []
        for name in WORKERS:
            spec = self.worker_spec(name)
            if processes.stop(spec.pid_file, spec.marker):
                stopped.append(name)
        for name in reversed(SERVICES):
            spec = self.service_spec(name)
            if processes.stop(spec.pid_file, spec.marker):
                stopped.append(name)
        return stopped

    def status(self) -> dict[str, int | None]:
        return {spec.name: processes.running_pid(spec.pid_file, spec.marker) for spec in self.all_specs()}

    def infra_running(self) -> bool:
        return all(
            processes.running_pid(spec.pid_file, spec.marker) is not None and processes.port_open("127.0.0.1", port)
            for spec, port in ((self.kafka_spec(), self.config.kafka_port), (self.mongo_spec(), self.config.mongo_port))
        )

    def _write_state(self) -> None:
        self.dev_dir.mkdir(parents=True, exist_ok=True)
        state = asdict(self.config) | {"dev_dir": str(self.dev_dir)}
        (self.dev_dir / "stack.json").write_text(json.dumps(state, indent=2))


def load_running_stack(dev_dir: Path) -> DevStack | None:
    """The stack `make up` left running under `dev_dir`, if its broker and database still answer."""
    try:
        state = json.loads((dev_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return None
    config = StackConfig(
        dev_dir=Path(state["dev_dir"]),
        kafka_port=state["kafka_port"],
        mongo_port=state["mongo_port"],
        service_ports=state["service_ports"],
        worker_ports=state.get("worker_ports", dict(DEFAULT_WORKER_PORTS)),
        metrics_ports=state.get("metrics_ports", dict(DEFAULT_METRICS_PORTS)),
        db_prefix=state.get("db_prefix", "harbour_"),
    )
    stack = DevStack(config)
    return stack if stack.infra_running() else None

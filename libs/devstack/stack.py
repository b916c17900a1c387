"""The local platform: broker, database, the local SMTP server and the five services on loopback.

Everything lives under one folder (`.dev/` by default): data, logs and PID
files. `up` is safe to call twice (what runs is left alone); `down` stops
exactly the processes whose PID files it finds, by PID.
"""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import noida_db

from libs.events.kafka import ensure_topics
from libs.events.topics import ALL_TOPICS
from libs.service.settings import DEFAULT_METRICS_PORTS, DEFAULT_WORKER_PORTS

from . import processes, softhsm
from .bytecode import compile_platform
from .config import DEFAULT_SMTP_PORT, REPO_ROOT, SERVICES, WORKERS, StackConfig
from .processes import ProcessSpec
from .secrets import dev_secrets

# How long a port may stay open after the process of ours that held it is seen dead, before `up` calls it another
# program's (the threads of a process killed with SIGKILL close its sockets a moment after its main thread is gone).
PORTS_LET_GO_S = 5.0


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
                "--transaction-lifetime-s", str(self.config.mongo_transaction_lifetime_s),
                "--ttl-sweep-s", str(self.config.mongo_ttl_sweep_s),
            ],
            marker=str(data_dir),
            cwd=work_dir,
            env={"PYTHONPATH": str(REPO_ROOT)},
            log_file=self.log_dir / "mongodb.log",
            pid_file=self.run_dir / "mongodb.pid",
        )

    def smtp_spec(self) -> ProcessSpec:
        """The local SMTP server (aiosmtpd): notify's e-mails arrive in its Maildir (StackConfig.maildir)."""
        work_dir = self.dev_dir / "smtp"
        return ProcessSpec(
            name="smtp",
            argv=[sys.executable, "-m", "libs.devstack.smtp_server", "--port", str(self.config.smtp_port),
                  "--maildir", str(self.config.maildir)],
            marker=f"--maildir {self.config.maildir}",  # the stack's folder, like the broker's and the database's
            cwd=work_dir,
            env={"PYTHONPATH": str(REPO_ROOT)},
            log_file=self.log_dir / "smtp.log",
            pid_file=self.run_dir / "smtp.pid",
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
        return [self.kafka_spec(), self.mongo_spec(), self.smtp_spec(), *(self.service_spec(n) for n in SERVICES),
                *(self.worker_spec(n) for n in WORKERS)]

    # -- life cycle ----------------------------------------------------------

    def _refuse_taken_ports(self, parts: Iterable[tuple[ProcessSpec, Iterable[int]]]) -> None:
        """Before starting what is not running: a port another program already listens on is refused. Our process,
        unable to bind, would die while the wait for its port (or its /readyz) passed at once — on a MongoDB of the
        machine's own on 27017, another checkout's gateway — and the stack would use that other program."""
        parts = [(spec, ports) for spec, ports in parts if processes.running_pid(spec.pid_file, spec.marker) is None]

        def taken_now() -> list[str]:
            return [f"{spec.name} on {port}" for spec, ports in parts for port in ports if processes.port_open("127.0.0.1", port)]

        # A process of ours just killed holds its ports a moment after it is seen dead (its other threads still
        # exiting): give those a few seconds to close before calling them another program's.
        taken, deadline = taken_now(), time.monotonic() + PORTS_LET_GO_S
        while taken and time.monotonic() < deadline:
            time.sleep(0.1)
            taken = taken_now()
        if taken:
            raise RuntimeError(f"another program already listens where this stack's {', '.join(taken)} would: stop it, "
                               "or give this stack other ports (the HARBOUR_*_PORT variables, docs/operations.md)")

    def up_infra(self, timeout_s: float = 60.0) -> None:
        parts = ((self.kafka_spec(), self.config.kafka_port), (self.mongo_spec(), self.config.mongo_port))
        self._refuse_taken_ports((spec, (port,)) for spec, port in parts)
        for spec, port in parts:
            pid = processes.start(spec)
            processes.wait_until(
                lambda: processes.port_open("127.0.0.1", port) or not processes.is_alive(pid),
                timeout_s=timeout_s,
                what=f"{spec.name} on port {port}",
            )
            if not processes.is_alive(pid):
                raise RuntimeError(f"{spec.name} exited at start; see {spec.log_file}")
        asyncio.run(ensure_topics(self.config.kafka_bootstrap, ALL_TOPICS,
                                  retention_cap_ms=self.config.kafka_retention_cap_ms if self.config.sandbox else 0))
        self._write_state()

    def up_services(self, timeout_s: float = 90.0) -> None:
        secrets = dev_secrets(self.dev_dir)
        softhsm.ensure_token(self.dev_dir, label=secrets["HARBOUR_SIGNING_TOKEN_LABEL"],
                             so_pin=secrets["HARBOUR_SIGNING_SO_PIN"], pin=secrets["HARBOUR_SIGNING_HSM_PIN"])
        self.up_smtp(timeout_s)
        compile_platform()  # at the level the services run at, before they import it
        self._refuse_taken_ports([
            *((self.service_spec(name), (self.config.service_ports[name], self.config.metrics_ports[name])) for name in SERVICES),
            *((self.worker_spec(name), (self.config.worker_ports[name], self.config.metrics_ports[name])) for name in WORKERS)])
        # All start at once, then each is waited for: their start-ups overlap.
        started = {name: processes.start(self.service_spec(name)) for name in SERVICES}
        for name, pid in started.items():
            self._wait_ready(name, pid, self.config.service_url(name), timeout_s)
        for name in WORKERS:
            self.up_worker(name, timeout_s)

    def up_smtp(self, timeout_s: float = 30.0) -> int:
        """Start the local SMTP server (again, after a test stopped it) and wait until it listens; its PID."""
        spec = self.smtp_spec()
        self._refuse_taken_ports([(spec, (self.config.smtp_port,))])
        pid = processes.start(spec)
        processes.wait_until(lambda: processes.port_open("127.0.0.1", self.config.smtp_port) or not processes.is_alive(pid),
                             timeout_s=timeout_s, what=f"smtp on port {self.config.smtp_port}")
        if not processes.is_alive(pid):
            raise RuntimeError(f"smtp exited at start (port {self.config.smtp_port} taken?); see {spec.log_file}")
        return pid

    def down_smtp(self) -> bool:
        spec = self.smtp_spec()
        return processes.stop(spec.pid_file, spec.marker)

    def up_worker(self, name: str, timeout_s: float = 90.0) -> int:
        """Start one worker (again, after a test killed it) and wait until it is ready."""
        self._refuse_taken_ports([(self.worker_spec(name), (self.config.worker_ports[name], self.config.metrics_ports[name]))])
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
            log_file = self.log_dir / (name + ".log")
            raise RuntimeError(f"{name} exited at start; see {log_file}; its last lines:\n{processes.tail(log_file)}")

    def up(self) -> float:
        """Start whatever is not running (everything, the first time; after a crash, what crashed).

        If a part fails to come up, stop what this call started and re-raise; what was running before is left
        running, and after a crash the broker and the database stay up too, so a failed restart of one service
        never takes the rest of the stack down with it.
        """
        started = time.monotonic()
        running_before = {name for name, pid in self.status().items() if pid is not None}
        try:
            self.up_infra()
            self.up_services()
        except BaseException:
            # A first start that fails leaves nothing behind. A restart after a crash keeps the broker and the
            # database it (re)started too: what runs on them must not lose them because one service would not start.
            self._stop_all_but(running_before | ({self.kafka_spec().name, self.mongo_spec().name} if running_before else set()))
            raise
        return time.monotonic() - started

    def _stop_all_but(self, keep: set[str]) -> None:
        """Stop, in `down`'s order, every process not named in `keep`."""
        ordered = [*(self.worker_spec(n) for n in WORKERS), *(self.service_spec(n) for n in reversed(SERVICES)),
                   self.smtp_spec(), self.mongo_spec(), self.kafka_spec()]
        for spec in ordered:
            if spec.name not in keep:
                processes.stop(spec.pid_file, spec.marker)
        if not keep:
            (self.dev_dir / "stack.json").unlink(missing_ok=True)

    def spec(self, name: str) -> ProcessSpec:
        """The process spec of `kafka`, `mongo`, a service or a worker."""
        return next(spec for spec in self.all_specs() if spec.name == name)

    def crash(self, name: str) -> int:
        """SIGKILL one process of the stack (fault injection: tests, bench/chaos.py); return the PID it had."""
        spec = self.spec(name)
        pid = processes.running_pid(spec.pid_file, spec.marker)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        processes.kill(pid)
        return pid

    def restart_infra_part(self, name: str, timeout_s: float = 60.0) -> int:
        """Start the broker or the database again on its port and data (after `crash`); return its PID."""
        spec = self.spec(name)
        port = self.config.kafka_port if name == "kafka" else self.config.mongo_port
        pid = processes.start(spec)
        processes.wait_until(lambda: processes.port_open("127.0.0.1", port) or not processes.is_alive(pid),
                             timeout_s=timeout_s, what=f"{name} on port {port}")
        if not processes.is_alive(pid):
            raise RuntimeError(f"{name} exited at start; see {spec.log_file}")
        return pid

    def down(self) -> list[str]:
        """Stop services first (they flush their work), then the database and the broker."""
        stopped = self.down_services()
        for spec in (self.mongo_spec(), self.kafka_spec()):
            if processes.stop(spec.pid_file, spec.marker):
                stopped.append(spec.name)
        (self.dev_dir / "stack.json").unlink(missing_ok=True)
        return stopped

    def down_services(self) -> list[str]:
        """Stop the workers and the gateway first, so no request reaches a stopped upstream; then the services and
        the SMTP server together (their graceful shutdowns overlap)."""
        first = [self.worker_spec(name) for name in WORKERS] + [self.service_spec("gateway")]
        then = [self.service_spec(name) for name in reversed(SERVICES) if name != "gateway"] + [self.smtp_spec()]
        stopped = []
        for specs in (first, then):
            done = processes.stop_many([(spec.pid_file, spec.marker) for spec in specs])
            stopped += [spec.name for spec, was in zip(specs, done) if was]
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
        smtp_port=state.get("smtp_port", DEFAULT_SMTP_PORT),
        service_ports=state["service_ports"],
        worker_ports=state.get("worker_ports", dict(DEFAULT_WORKER_PORTS)),
        metrics_ports=state.get("metrics_ports", dict(DEFAULT_METRICS_PORTS)),
        db_prefix=state.get("db_prefix", "harbour_"),
    )
    stack = DevStack(config)
    return stack if stack.infra_running() else None

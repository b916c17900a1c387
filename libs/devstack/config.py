"""Where the local platform lives and listens: its folder, each process's ports, and the environment services get.

The defaults are the public local ports (libs/service/settings.py); tests take
a private stack on free ports (`StackConfig.free_ports`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
from .secrets import dev_secrets

REPO_ROOT = Path(__file__).resolve().parents[2]
# Start order: the gateway last, so its upstreams are there when it becomes ready.
SERVICES = ("auth", "formfill", "notify", "signing", "gateway")
# Workers: processes of a service that serve no API (health and metrics only), started after the services.
WORKERS = {"notify-dispatcher": "services.notify.dispatcher"}
# The local SMTP server notify's e-mails reach (libs/devstack/smtp_server.py): HARBOUR_SMTP_PORT, 2525 by default.
DEFAULT_SMTP_PORT = 2525
# The services' and workers' `python -O` level (PYTHONOPTIMIZE): 2 leaves docstrings and asserts out of their memory;
# bytecode.py compiles the platform at this level before they start (docs/operations.md, idle RSS).
SERVICE_OPTIMIZE = 2


def dev_dir_from_env() -> Path:
    """The stack's folder: HARBOUR_DEV_DIR, or `.dev/` in the repository."""
    return Path(os.environ.get("HARBOUR_DEV_DIR", REPO_ROOT / ".dev")).resolve()


@dataclass
class StackConfig:
    dev_dir: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    mongo_port: int = DEFAULT_MONGO_PORT
    smtp_port: int = DEFAULT_SMTP_PORT
    service_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    worker_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKER_PORTS))
    # Each process's internal /metrics listener (services and workers), apart from its public port.
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_METRICS_PORTS))
    # Databases are named <prefix><service>; tests use their own prefix on a shared server.
    db_prefix: str = "harbour_"
    # More environment for every service (tests raise the gateway's rate limits, say).
    extra_env: dict[str, str] = field(default_factory=dict)
    # How long the database lets a transaction live (mongod's transactionLifetimeLimitSeconds, 60 s by default): the
    # locks of a process killed mid-transaction are released only then, so its work stalls that long. The platform's
    # transactions take well under a second; 15 s keeps a crash's recovery within 15 s (tests use 10 s).
    mongo_transaction_lifetime_s: float = 15.0
    # How often the local database removes expired documents of TTL indexes: 60 s, MongoDB's own interval
    # (HARBOUR_MONGO_TTL_SWEEP_S). Code never waits for it: an expired document is refused by its own expiry check.
    mongo_ttl_sweep_s: float = field(default_factory=lambda: float(os.environ.get("HARBOUR_MONGO_TTL_SWEEP_S", "60")))
    # The longest the local broker keeps an event topic's records (ms; HARBOUR_KAFKA_RETENTION_CAP_MS, 0: the
    # registry's days). It holds every record in memory and rewrites them all to its data file every ~2 s while it is
    # written to, so its cost per event grows with what it keeps (docs/operations.md, "The local broker's retention").
    # Off by default: with five minutes (300000; the growth bench sets it) one e2e test reading agency topics whole
    # found them empty in one of two fresh-clone runs, not yet understood. Dead letters and revocations never capped.
    kafka_retention_cap_ms: int = field(default_factory=lambda: int(os.environ.get("HARBOUR_KAFKA_RETENTION_CAP_MS", "0")))
    # False: the services run in production mode (HARBOUR_SANDBOX=false, no dev-only switch; libs/service/production.py),
    # which also wants an https HARBOUR_ISSUER in extra_env. The tests of production mode use it.
    sandbox: bool = True

    @classmethod
    def from_env(cls) -> "StackConfig":
        ports = {name: int(os.environ.get(f"HARBOUR_{name.upper()}_PORT", port)) for name, port in DEFAULT_PORTS.items()}
        return cls(
            dev_dir=dev_dir_from_env(),
            kafka_port=int(os.environ.get("HARBOUR_KAFKA_PORT", DEFAULT_KAFKA_PORT)),
            mongo_port=int(os.environ.get("HARBOUR_MONGO_PORT", DEFAULT_MONGO_PORT)),
            smtp_port=int(os.environ.get("HARBOUR_SMTP_PORT", DEFAULT_SMTP_PORT)),
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
            smtp_port=processes.free_port(),
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

    @property
    def maildir(self) -> Path:
        """Where the local SMTP server writes each message it accepts (a Maildir: `mailbox.Maildir(path)` reads it)."""
        return self.dev_dir / "mail"

    @property
    def sms_dir(self) -> Path:
        """notify's local SMS sink: one JSON file per SMS (services/notify/messaging.py, LocalSmsSink)."""
        return self.dev_dir / "sms"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[name]}"

    def service_env(self) -> dict[str, str]:
        """The environment every service process gets: where the infrastructure and its peers are."""
        env = {
            "HARBOUR_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "HARBOUR_MONGO_URI": self.mongo_uri,
            "HARBOUR_ISSUER": self.service_url("gateway"),
            # The local platform is a sandbox: citizens may self-register (assurance basic), anyone may register a client.
            "HARBOUR_SANDBOX": "true" if self.sandbox else "false",
            # Agencies' callbacks and clients' jwks_uri may be on this machine (never private or link-local ranges).
            **({"HARBOUR_OUTBOUND_ALLOW_LOOPBACK": "1"} if self.sandbox else {}),
            # Production mode refuses a retention cap (libs/service/production.py).
            **({"HARBOUR_KAFKA_RETENTION_CAP_MS": str(self.kafka_retention_cap_ms)} if self.sandbox else {}),
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            # `python -OO`: no docstrings or asserts in the services' memory (bytecode.py; docs/operations.md, idle RSS).
            "PYTHONOPTIMIZE": str(SERVICE_OPTIMIZE),
            **dev_secrets(self.dev_dir),
            # signing's HSM: this folder's SoftHSM2 token (made by DevStack.up_services).
            "SOFTHSM2_CONF": str(softhsm.config_path(self.dev_dir)),
            # notify's e-mails go to this stack's SMTP server, its SMS to this stack's sink folder.
            "HARBOUR_NOTIFY_SMTP_HOST": "127.0.0.1",
            "HARBOUR_NOTIFY_SMTP_PORT": str(self.smtp_port),
            "HARBOUR_NOTIFY_SMS_SINK_DIR": str(self.sms_dir),
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

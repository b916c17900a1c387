"""Settings every service shares, read from the environment only.

Production (Kubernetes) and the local dev stack differ only in these
variables; nothing else changes between them.

Each setting's default is written once: a settings dataclass declares a
field as `setting("VARIABLE", default)` and `from_env(cls, ...)` reads every
such field from `HARBOUR_VARIABLE`, falling back to that default.
docs/operations.md lists them; tests/unit/test_settings_docs.py checks the
table against these declarations.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

# The default local ports (part of the public contract, docs/operations.md); tests pick free ports of their own.
DEFAULT_PORTS = {
    "gateway": 8000,
    "auth": 8001,
    "formfill": 8002,
    "notify": 8003,
    "signing": 8004,
}
# Processes that serve no API, only their health (python -m services.notify.dispatcher).
DEFAULT_WORKER_PORTS = {"notify-dispatcher": 8013}
# Prometheus scrapes each process on a listener of its own, never on the public one (the gateway's is the
# internet's): the public port + 100.
DEFAULT_METRICS_PORTS = {name: port + 100 for name, port in {**DEFAULT_PORTS, **DEFAULT_WORKER_PORTS}.items()}
DEFAULT_KAFKA_PORT = 9092
DEFAULT_MONGO_PORT = 27017


def local_url(process: str) -> str:
    """Where a service listens on this machine by default (the dev stack's layout)."""
    return f"http://127.0.0.1:{DEFAULT_PORTS[process]}"


def kafka_bootstrap_at(port: int) -> str:
    return f"127.0.0.1:{port}"


def mongo_uri_at(port: int) -> str:
    # The local MongoDB-protocol server (SecantusDB) needs retryWrites=false: with retries on, writes slow to ~30/s after ~10k.
    return f"mongodb://127.0.0.1:{port}/?retryWrites=false"


DEFAULT_KAFKA_BOOTSTRAP = kafka_bootstrap_at(DEFAULT_KAFKA_PORT)
DEFAULT_MONGO_URI = mongo_uri_at(DEFAULT_MONGO_PORT)
# The gateway's public base URL: issuer of every token and audience of device proofs.
DEFAULT_ISSUER = local_url("gateway")


def env(name: str, default: str) -> str:
    return os.environ.get(f"HARBOUR_{name}", default)


class SettingsError(RuntimeError):
    """A required setting is missing: the service refuses to start rather than run half-configured."""


def env_required(name: str) -> str:
    value = env(name, "")
    if not value:
        raise SettingsError(f"HARBOUR_{name} is not set (the dev stack sets it; see docs/operations.md)")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(f"HARBOUR_{name}")
    return default if raw is None else parse_bool(raw)


def parse_bool(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def parse_url(raw: str) -> str:
    """A base URL, without the trailing slash paths are appended to."""
    return raw.rstrip("/")


def parse_list(raw: str) -> tuple[str, ...]:
    """A comma-separated list; blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


_PARSERS: dict[type, Callable[[str], Any]] = {bool: parse_bool, int: int, float: float, str: str}
T = TypeVar("T")
S = TypeVar("S")


def setting(variable: str, default: T, *, parse: Callable[[str], T] | None = None, repr: bool = True) -> T:
    """A dataclass field read from `HARBOUR_<variable>` by `from_env`; `default` is the one place its default is written.

    `variable` may name `{SERVICE}`, the service's name in capitals (`{SERVICE}_PORT`). `parse` turns the
    variable's text into the value; by default the default's type (bool: 1/true/yes/on) decides.
    """
    if parse is None and type(default) not in _PARSERS:
        raise TypeError(f"setting {variable}: give a parse function for a {type(default).__name__} default")
    return field(default=default, repr=repr, metadata={"env": variable, "parse": parse or _PARSERS[type(default)]})


def setting_variable(f: Any, process: str = "") -> str | None:
    """The environment variable of a `setting()` field (None for other fields); `{SERVICE}` becomes `process`."""
    variable = f.metadata.get("env")
    return f"HARBOUR_{variable.format(SERVICE=process.upper().replace('-', '_'))}" if variable else None


def from_env(cls: type[S], *, process: str = "", defaults: dict[str, Any] | None = None, **given: Any) -> S:
    """`cls` with its `setting()` fields read from the environment, and `given` as they are.

    `process` names the `{SERVICE}` of per-service variables. `defaults`: a default of this process's own
    for some settings (auth's larger body limit, say), used when the variable is unset.
    """
    values: dict[str, Any] = dict(given)
    for f in fields(cls):  # type: ignore[arg-type]
        variable = setting_variable(f, process)
        if f.name in given or variable is None:
            continue
        raw = os.environ.get(variable)
        if raw is not None:
            values[f.name] = f.metadata["parse"](raw)
        elif defaults and f.name in defaults:
            values[f.name] = defaults[f.name]
    return cls(**values)


def issuer_setting() -> str:
    """HARBOUR_ISSUER, which every service reads: the gateway's public base URL."""
    return setting("ISSUER", DEFAULT_ISSUER, parse=parse_url)


def auth_url_setting() -> str:
    """HARBOUR_AUTH_URL: where auth listens, for its JWKS (the resource services, and the gateway's upstream)."""
    return setting("AUTH_URL", local_url("auth"), parse=parse_url)


def declared_settings(cls: type, process: str = "") -> dict[str, Any]:
    """Variable → declared default of every `setting()` field of `cls` (for the docs check)."""
    return {setting_variable(f, process): f.default for f in fields(cls) if f.metadata.get("env") and f.default is not MISSING}


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaSecurity:
    """How the services authenticate to the broker: nothing locally; SCRAM over TLS in production (Strimzi)."""

    protocol: str = setting("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", parse=str.upper)
    sasl_mechanism: str = setting("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", parse=str.upper)
    username: str = setting("KAFKA_USERNAME", "")
    password: str = setting("KAFKA_PASSWORD", "", repr=False)
    ca_file: str = setting("KAFKA_CA_FILE", "")  # PEM bundle of the broker's CA; empty: the system's trust store

    def __post_init__(self) -> None:
        if self.protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise SettingsError(f"HARBOUR_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}")
        if self.uses_sasl:
            if self.sasl_mechanism not in KAFKA_SASL_MECHANISMS:
                raise SettingsError(f"HARBOUR_KAFKA_SASL_MECHANISM must be one of {', '.join(KAFKA_SASL_MECHANISMS)}")
            if not (self.username and self.password):
                raise SettingsError("SASL needs HARBOUR_KAFKA_USERNAME and HARBOUR_KAFKA_PASSWORD")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @classmethod
    def from_env(cls) -> "KafkaSecurity":
        return from_env(cls)


@dataclass(frozen=True)
class ServiceSettings:
    service: str
    host: str = setting("{SERVICE}_HOST", "127.0.0.1")
    # 0 here; from_env gives each service its port of DEFAULT_PORTS.
    port: int = setting("{SERVICE}_PORT", 0)
    # The internal metrics listener (/metrics only): loopback locally; the pod's address in Kubernetes, where
    # only Prometheus is admitted to it (deploy/k8s/base/networkpolicies.yaml).
    metrics_host: str = setting("METRICS_HOST", "127.0.0.1")
    metrics_port: int = setting("{SERVICE}_METRICS_PORT", 0)
    mongo_uri: str = setting("MONGO_URI", DEFAULT_MONGO_URI)
    # "" here; from_env names it harbour_<service>.
    database: str = setting("{SERVICE}_DB", "")
    kafka_bootstrap: str = setting("KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP)
    # Locally the service creates the topics it uses; under Strimzi the
    # KafkaTopic resources do and the service must not try.
    kafka_create_topics: bool = setting("KAFKA_CREATE_TOPICS", True)
    # Milliseconds; 0: none. The longest the topics this service creates keep their events (dead letters and the
    # revocations excepted): the local stack sets it, because its broker's cost grows with what it keeps
    # (docs/operations.md, "The local broker's retention"). Never set under Strimzi: topics.yaml says how long.
    kafka_retention_cap_ms: int = setting("KAFKA_RETENTION_CAP_MS", 0)
    # Put before every consumer group's name, so that two copies of the platform (a test run's, say) can share
    # one broker without joining each other's groups. Empty in production.
    kafka_group_prefix: str = setting("KAFKA_GROUP_PREFIX", "")
    # Names this process for the partition leases of its consumers (libs/events/partition_leases.py); stable
    # across a restart in place so the restarted process takes its leases back at once. Empty: host and port.
    instance_id: str = setting("INSTANCE_ID", "")
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    log_level: str = setting("LOG_LEVEL", "INFO")
    # The access log (libs/service/middleware.py): every error and every request slower than this is written...
    access_log_slow_ms: float = setting("ACCESS_LOG_SLOW_MS", 500.0)
    # ...and one in this many of the rest (1: every request; 0: none). Metrics count every request regardless.
    access_log_sample: int = setting("ACCESS_LOG_SAMPLE", 100)
    # The sandbox (the dev stack, the tests, a development cluster): citizens self-register, anyone registers a
    # client, dev-only settings are allowed. Off, the default, is production mode (libs/service/production.py).
    sandbox: bool = setting("SANDBOX", False)
    max_body_bytes: int = setting("{SERVICE}_MAX_BODY_BYTES", 1024 * 1024)
    # Requests handled at once by this process; one more is 503 with Retry-After (libs/service/overload.py). 0: no limit.
    max_in_flight: int = setting("{SERVICE}_MAX_IN_FLIGHT", 32)
    # Every database operation of a request must be done this many seconds after the request arrived, or the
    # request is 503 with Retry-After (libs/store/client.py): a stalled database answers quickly, well inside the
    # gateway's upstream timeout.
    mongo_request_timeout_s: float = setting("MONGO_REQUEST_TIMEOUT_S", 5.0)
    shutdown_timeout_s: float = 10.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, service: str, **defaults: Any) -> "ServiceSettings":
        """The settings of `service`; `defaults` are its own defaults where they differ from every service's."""
        own = {"port": DEFAULT_PORTS.get(service, 0), "metrics_port": DEFAULT_METRICS_PORTS.get(service, 0),
               "database": f"harbour_{service}", **defaults}
        settings = from_env(cls, process=service, defaults=own, service=service, kafka_security=KafkaSecurity.from_env())
        if not settings.sandbox:
            from .production import refuse_development_configuration  # it builds on this module

            refuse_development_configuration(os.environ)
        return settings

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def instance(self) -> str:
        """This process's instance id: HARBOUR_INSTANCE_ID, else host name, service and port (the pid without one)."""
        if self.instance_id:
            return self.instance_id
        return f"{socket.gethostname()}:{self.service}:{self.port or self.metrics_port or os.getpid()}"

    def metrics_url(self) -> str:
        return f"http://{self.metrics_host}:{self.metrics_port}"

"""Settings every service shares, read from the environment only.

Production (Kubernetes) and the local dev stack differ only in these
variables; nothing else changes between them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# DESIGN.md §10: the public default ports.
DEFAULT_PORTS = {
    "gateway": 8000,
    "auth": 8001,
    "formfill": 8002,
    "notify": 8003,
    "signing": 8004,
}
# Prometheus scrapes each process on a listener of its own, never on the public one (the gateway's is the
# internet's): the public port + 100, and the notify dispatcher's (8013) + 100.
DEFAULT_METRICS_PORTS = {**{name: port + 100 for name, port in DEFAULT_PORTS.items()}, "notify-dispatcher": 8113}
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
# retryWrites=false is required by the local MongoDB-protocol server (DESIGN.md §9).
DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017/?retryWrites=false"


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
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaSecurity:
    """How the services authenticate to the broker: nothing locally; SCRAM over TLS in production (Strimzi)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""  # PEM bundle of the broker's CA; empty: the system's trust store

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
        return cls(
            protocol=env("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            sasl_mechanism=env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512").upper(),
            username=env("KAFKA_USERNAME", ""),
            password=env("KAFKA_PASSWORD", ""),
            ca_file=env("KAFKA_CA_FILE", ""),
        )


@dataclass(frozen=True)
class ServiceSettings:
    service: str
    host: str = "127.0.0.1"
    port: int = 0
    # The internal metrics listener (/metrics only): loopback locally; the pod's address in Kubernetes, where
    # only Prometheus is admitted to it (deploy/k8s/base/networkpolicies.yaml).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    mongo_uri: str = DEFAULT_MONGO_URI
    database: str = ""
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    # Locally the service creates the topics it uses; under Strimzi the
    # KafkaTopic resources do and the service must not try.
    kafka_create_topics: bool = True
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    shutdown_timeout_s: float = 10.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, service: str) -> "ServiceSettings":
        upper = service.upper()
        return cls(
            service=service,
            host=env(f"{upper}_HOST", "127.0.0.1"),
            port=int(env(f"{upper}_PORT", str(DEFAULT_PORTS.get(service, 0)))),
            metrics_host=env("METRICS_HOST", "127.0.0.1"),
            metrics_port=int(env(f"{upper}_METRICS_PORT", str(DEFAULT_METRICS_PORTS.get(service, 0)))),
            mongo_uri=env("MONGO_URI", DEFAULT_MONGO_URI),
            database=env(f"{upper}_DB", f"harbour_{service}"),
            kafka_bootstrap=env("KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP),
            kafka_create_topics=env_bool("KAFKA_CREATE_TOPICS", True),
            kafka_security=KafkaSecurity.from_env(),
            log_level=env("LOG_LEVEL", "INFO"),
            max_body_bytes=int(env(f"{upper}_MAX_BODY_BYTES", str(1024 * 1024))),
        )

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def metrics_url(self) -> str:
        return f"http://{self.metrics_host}:{self.metrics_port}"

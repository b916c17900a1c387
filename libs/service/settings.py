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


@dataclass(frozen=True)
class ServiceSettings:
    service: str
    host: str = "127.0.0.1"
    port: int = 0
    mongo_uri: str = DEFAULT_MONGO_URI
    database: str = ""
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    # Locally the service creates the topics it uses; under Strimzi the
    # KafkaTopic resources do and the service must not try.
    kafka_create_topics: bool = True
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
            mongo_uri=env("MONGO_URI", DEFAULT_MONGO_URI),
            database=env(f"{upper}_DB", f"harbour_{service}"),
            kafka_bootstrap=env("KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP),
            kafka_create_topics=env_bool("KAFKA_CREATE_TOPICS", True),
            log_level=env("LOG_LEVEL", "INFO"),
            max_body_bytes=int(env(f"{upper}_MAX_BODY_BYTES", str(1024 * 1024))),
        )

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

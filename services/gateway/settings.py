"""Gateway settings: its own service settings plus where each upstream lives."""

from __future__ import annotations

from dataclasses import dataclass

from libs.service.settings import DEFAULT_PORTS, ServiceSettings, env

UPSTREAMS = ("auth", "formfill", "notify", "signing")


@dataclass(frozen=True)
class GatewaySettings:
    service: ServiceSettings
    upstreams: dict[str, str]
    upstream_timeout_s: float = 30.0

    @classmethod
    def from_env(cls) -> "GatewaySettings":
        return cls(
            service=ServiceSettings.from_env("gateway"),
            upstreams={
                name: env(f"{name.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[name]}").rstrip("/")
                for name in UPSTREAMS
            },
            upstream_timeout_s=float(env("GATEWAY_UPSTREAM_TIMEOUT_S", "30")),
        )

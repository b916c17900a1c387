"""Gateway settings: its own service settings, where each upstream lives, and the edge policies' knobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from libs.service.settings import DEFAULT_PORTS, ServiceSettings, env

UPSTREAMS = ("auth", "formfill", "notify", "signing")


@dataclass(frozen=True)
class GatewaySettings:
    service: ServiceSettings
    upstreams: dict[str, str]
    # The issuer (the gateway's public base URL): audience and issuer of the tokens checked at the edge.
    issuer: str = "http://127.0.0.1:8000"
    upstream_timeout_s: float = 30.0
    rate_per_ip: float = 50.0
    burst_per_ip: int = 100
    rate_per_client: float = 100.0
    burst_per_client: int = 200
    cors_origins: frozenset[str] = field(default_factory=frozenset)
    # Proxies (the ingress controller's network) whose X-Forwarded-For is believed for per-address limits.
    trusted_proxies: tuple[str, ...] = ()
    breaker_failures: int = 5
    breaker_open_s: float = 5.0

    @property
    def jwks_url(self) -> str:
        return self.upstreams["auth"] + "/oidc/jwks"

    @classmethod
    def from_env(cls) -> "GatewaySettings":
        return cls(
            service=ServiceSettings.from_env("gateway"),
            upstreams={
                name: env(f"{name.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[name]}").rstrip("/")
                for name in UPSTREAMS
            },
            issuer=env("ISSUER", "http://127.0.0.1:8000").rstrip("/"),
            upstream_timeout_s=float(env("GATEWAY_UPSTREAM_TIMEOUT_S", "30")),
            rate_per_ip=float(env("GATEWAY_RATE_PER_IP", "50")),
            burst_per_ip=int(env("GATEWAY_BURST_PER_IP", "100")),
            rate_per_client=float(env("GATEWAY_RATE_PER_CLIENT", "100")),
            burst_per_client=int(env("GATEWAY_BURST_PER_CLIENT", "200")),
            cors_origins=frozenset(o.strip() for o in env("GATEWAY_CORS_ORIGINS", "").split(",") if o.strip()),
            trusted_proxies=tuple(p.strip() for p in env("GATEWAY_TRUSTED_PROXIES", "").split(",") if p.strip()),
        )

"""Gateway settings: its own service settings, where each upstream lives, and the edge policies' knobs."""

from __future__ import annotations

from dataclasses import dataclass

from libs.service.settings import ServiceSettings, env, from_env, issuer_setting, local_url, parse_list, parse_url, setting

UPSTREAMS = ("auth", "formfill", "notify", "signing")


@dataclass(frozen=True)
class GatewaySettings:
    service: ServiceSettings
    # Service name → base URL, each from HARBOUR_<NAME>_URL (default: the service's local port).
    upstreams: dict[str, str]
    # The issuer (the gateway's public base URL): audience and issuer of the tokens checked at the edge.
    issuer: str = issuer_setting()
    upstream_timeout_s: float = setting("GATEWAY_UPSTREAM_TIMEOUT_S", 30.0)
    # Connecting to an upstream takes milliseconds on a cluster network: one that does not accept within this is
    # treated as down (503 at once, its circuit counts the failure) instead of holding the caller.
    upstream_connect_timeout_s: float = setting("GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S", 1.0)
    # Requests forwarded to one upstream at once (long-lived streams apart); one more is 503 with Retry-After.
    upstream_max_in_flight: int = setting("GATEWAY_UPSTREAM_MAX_IN_FLIGHT", 256)
    # How often each upstream's /healthz is probed: its health in /readyz and harbour_gateway_upstream_up.
    upstream_probe_s: float = setting("GATEWAY_UPSTREAM_PROBE_S", 2.0)
    rate_per_ip: float = setting("GATEWAY_RATE_PER_IP", 50.0)
    burst_per_ip: int = setting("GATEWAY_BURST_PER_IP", 100)
    rate_per_client: float = setting("GATEWAY_RATE_PER_CLIENT", 100.0)
    burst_per_client: int = setting("GATEWAY_BURST_PER_CLIENT", 200)
    cors_origins: frozenset[str] = setting("GATEWAY_CORS_ORIGINS", frozenset(), parse=lambda raw: frozenset(parse_list(raw)))
    # Proxies (the ingress controller's network) whose X-Forwarded-For is believed for per-address limits.
    trusted_proxies: tuple[str, ...] = setting("GATEWAY_TRUSTED_PROXIES", (), parse=parse_list)
    # Access tokens the edge verified, remembered until they expire (least recently used dropped beyond this
    # many); the revocation list is still consulted on every request. 0: verify every time.
    token_cache_size: int = setting("GATEWAY_TOKEN_CACHE_SIZE", 1024)
    # Public documents (discovery and the app links: the routes marked cacheable) kept by the gateway's shared cache,
    # each for as long as its service's Cache-Control allows (cache.py). 0: every request goes to the service.
    cache_entries: int = setting("GATEWAY_CACHE_ENTRIES", 64)
    breaker_failures: int = 5
    breaker_open_s: float = 5.0

    @property
    def jwks_url(self) -> str:
        return self.upstreams["auth"] + "/oidc/jwks"

    @classmethod
    def from_env(cls) -> "GatewaySettings":
        return from_env(
            cls,
            # The gateway sheds per upstream (upstream_max_in_flight), not for the whole process: one slow
            # service must not take the others' places. HARBOUR_GATEWAY_MAX_IN_FLIGHT still caps it when set.
            service=ServiceSettings.from_env("gateway", max_in_flight=0),
            upstreams={name: parse_url(env(f"{name.upper()}_URL", local_url(name))) for name in UPSTREAMS},
        )

"""notify's settings: the shared service settings plus its keys, the dispatcher's port and the retry policy."""

from __future__ import annotations

import json
from dataclasses import dataclass

from libs.crypto import Keyring
from libs.service.settings import (
    DEFAULT_METRICS_PORTS,
    DEFAULT_WORKER_PORTS,
    ServiceSettings,
    auth_url_setting,
    env_required,
    from_env,
    issuer_setting,
    setting,
)

# Status callbacks are signed tokens that live this long (the callback keys' max token lifetime too).
CALLBACK_TOKEN_TTL_S = 300


@dataclass(frozen=True)
class NotifySettings:
    service: ServiceSettings
    # Key-encryption keys for personalisation, rendered messages and the callback-signing keys (first = current).
    keyring: Keyring
    # notify's private sealing key: auth seals a changed phone or e-mail and its one-time code to its public half
    # (the API process's consumer opens them; the dispatcher opens none and is not given it).
    sealing_jwk: dict | None
    issuer: str = issuer_setting()
    auth_url: str = auth_url_setting()
    # The dispatcher is a process of its own (python -m services.notify.dispatcher) with its own health and metrics port.
    dispatcher_port: int = setting("NOTIFY_DISPATCHER_PORT", DEFAULT_WORKER_PORTS["notify-dispatcher"])
    dispatcher_metrics_port: int = setting("NOTIFY_DISPATCHER_METRICS_PORT", DEFAULT_METRICS_PORTS["notify-dispatcher"])
    # Notifications per dispatch event: a batch job becomes ceil(n / chunk) events, each delivered in one transaction.
    chunk_size: int = setting("NOTIFY_CHUNK_SIZE", 500)
    # Access tokens verified here, remembered until they expire (the least recently used dropped beyond this many);
    # the revocation list is still consulted on every request. 0: verify every time.
    token_cache_size: int = setting("NOTIFY_TOKEN_CACHE_SIZE", 1024)
    max_batch: int = 10_000
    # Status callbacks: attempt n waits backoff * 2**(n-1) seconds; after max_attempts the callback is given up.
    callback_max_attempts: int = setting("NOTIFY_CALLBACK_MAX_ATTEMPTS", 6)
    callback_backoff_s: float = setting("NOTIFY_CALLBACK_BACKOFF_S", 1.0)
    callback_timeout_s: float = 5.0
    # Push: the adapter that hands pushes to a provider (channels.py), and the same retry policy for a provider that fails.
    push_adapter: str = setting("NOTIFY_PUSH_ADAPTER", "local")
    push_max_attempts: int = 5
    push_backoff_s: float = 1.0
    # E-mail and SMS (messaging.py): the adapters, where they deliver, and their retry policy (attempt n that fails waits
    # backoff * 2**(n-1) s; the last failure fails the notification). Locally the dev stack's SMTP server and SMS sink folder.
    email_adapter: str = setting("NOTIFY_EMAIL_ADAPTER", "smtp")
    smtp_host: str = setting("NOTIFY_SMTP_HOST", "127.0.0.1")
    smtp_port: int = setting("NOTIFY_SMTP_PORT", 2525)
    smtp_from: str = setting("NOTIFY_SMTP_FROM", "Harbour ID <notify@harbour-id.local>")
    smtp_starttls: bool = setting("NOTIFY_SMTP_STARTTLS", False)
    smtp_username: str = setting("NOTIFY_SMTP_USERNAME", "")
    smtp_password: str = setting("NOTIFY_SMTP_PASSWORD", "", repr=False)
    smtp_timeout_s: float = setting("NOTIFY_SMTP_TIMEOUT_S", 10.0)
    sms_adapter: str = setting("NOTIFY_SMS_ADAPTER", "local")
    sms_sink_dir: str = setting("NOTIFY_SMS_SINK_DIR", ".dev/sms")
    channel_max_attempts: int = setting("NOTIFY_CHANNEL_MAX_ATTEMPTS", 5)
    channel_backoff_s: float = setting("NOTIFY_CHANNEL_BACKOFF_S", 1.0)
    # How often the dispatcher looks for due scheduled/deferred notifications, callbacks and push retries.
    poll_interval_s: float = 0.5
    # A notification `sending` this long without progress is dispatched again (a crashed attempt lost its event).
    stale_after_s: float = setting("NOTIFY_STALE_AFTER_S", 30.0)
    # SSE: a comment line this often keeps proxies (the gateway cuts a stream silent for 30 s) and clients alive.
    sse_heartbeat_s: float = setting("NOTIFY_SSE_HEARTBEAT_S", 15.0)
    sse_poll_s: float = 0.5
    # Open inbox streams per device (per notify instance); one more is 429.
    sse_max_streams_per_device: int = setting("NOTIFY_SSE_MAX_STREAMS_PER_DEVICE", 3)

    @property
    def jwks_url(self) -> str:
        return self.auth_url + "/oidc/jwks"

    @property
    def callback_issuer(self) -> str:
        return f"{self.issuer}/v1/notifications"

    @classmethod
    def from_env(cls, service: str = "notify", *, sealing_key: bool = True) -> "NotifySettings":
        return from_env(
            cls,
            service=ServiceSettings.from_env(service),
            keyring=Keyring.from_env_value(env_required("NOTIFY_KEK")),
            sealing_jwk=json.loads(env_required("NOTIFY_SEALING_KEY")) if sealing_key else None,
        )

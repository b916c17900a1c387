"""auth's settings: the shared service settings plus its keys and policies.

Secrets come from the environment (Kubernetes Secrets in production; the dev
stack generates them once into .dev/secrets.json).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from libs import base64url
from libs.crypto import Keyring
from libs.service.settings import ServiceSettings, SettingsError, env_required, from_env, issuer_setting, parse_url, setting

_FINGERPRINT = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){31}")
_APPLE_APP_ID = re.compile(r"[A-Z0-9]{10}\.[A-Za-z0-9.-]+")


def _fingerprints(raw: str) -> tuple[str, ...]:
    """HARBOUR_AUTH_ANDROID_CERT_SHA256: comma-separated SHA-256 fingerprints as `keytool -list` prints them."""
    values = tuple(part.strip().upper() for part in raw.split(",") if part.strip())
    for value in values:
        if not _FINGERPRINT.fullmatch(value):
            raise SettingsError(f"HARBOUR_AUTH_ANDROID_CERT_SHA256: not a SHA-256 certificate fingerprint (32 hex bytes joined by ':'): {value!r}")
    return values


def _app_ids(raw: str) -> tuple[str, ...]:
    """HARBOUR_AUTH_APPLE_APP_IDS: comma-separated `<team id>.<bundle id>`."""
    values = tuple(part.strip() for part in raw.split(",") if part.strip())
    for value in values:
        if not _APPLE_APP_ID.fullmatch(value):
            raise SettingsError(f"HARBOUR_AUTH_APPLE_APP_IDS: not an Apple app id (<10-character team id>.<bundle id>): {value!r}")
    return values


@dataclass(frozen=True)
class AuthSettings:
    service: ServiceSettings
    # HMAC key for card numbers and activation codes: stored values are keyed hashes only.
    hash_key: bytes
    # Key-encryption keys for secrets at rest (token-signing private keys).
    keyring: Keyring
    # formfill's public key: enrolled profiles are sealed to it before they cross Kafka.
    formfill_sealing_jwk: dict
    # auth's own private sealing key: formfill and signing seal prompts' free text to its public half.
    sealing_jwk: dict
    # notify's public key: a changed phone or e-mail and its one-time code are sealed to it (profile/changes.py).
    notify_sealing_jwk: dict
    issuer: str = issuer_setting()
    activation_ttl_s: int = 30 * 60
    activation_max_attempts: int = 5
    device_nonce_ttl_s: int = 120
    device_token_ttl_s: int = 10 * 60
    # Adding a device from an existing one (devices/pairing.py): the new phone's code waits this long for the old
    # phone to enter it; the prompt it then gets lives this long; an account may enter this many wrong codes per window.
    pairing_ttl_s: int = setting("AUTH_PAIRING_TTL_S", 5 * 60)
    pairing_approval_ttl_s: int = setting("AUTH_PAIRING_APPROVAL_TTL_S", 2 * 60)
    pairing_max_wrong_codes: int = setting("AUTH_PAIRING_MAX_WRONG_CODES", 5)
    pairing_wrong_code_window_s: int = setting("AUTH_PAIRING_WRONG_CODE_WINDOW_S", 15 * 60)
    # Links a phone can trust (oidc/qr_links.py, oidc/endpoints/app_links.py): a login page's QR code changes every
    # second and is refused this many seconds after the second it was drawn for; the citizen app's identities for
    # https app links under the issuer (Android package + SHA-256 signing-certificate fingerprints, Apple app ids).
    qr_window_s: int = setting("AUTH_QR_WINDOW_S", 10)
    android_package: str = setting("AUTH_ANDROID_PACKAGE", "hk.harbourid.citizen")
    android_cert_sha256: tuple[str, ...] = setting("AUTH_ANDROID_CERT_SHA256", (), parse=_fingerprints)
    apple_app_ids: tuple[str, ...] = setting("AUTH_APPLE_APP_IDS", (), parse=_app_ids)
    # The citizen's web app (web_app.py, endpoints/web_app.py): the folder its static files are read from once at
    # start (empty: the clients/citizen_web the package carries), and its one origin, which is also the WebAuthn
    # relying party of its passkeys (empty: the issuer's origin, a loopback IP host written `localhost`, since WebAuthn
    # refuses IP addresses as RP IDs).
    web_app_dir: str = setting("AUTH_WEB_APP_DIR", "")
    web_app_origin: str = setting("AUTH_WEB_APP_ORIGIN", "", parse=parse_url)
    max_selfie_bytes: int = 2 * 1024 * 1024
    # OpenID Connect lifetimes.
    authorization_ttl_s: int = 5 * 60        # a login page / CIBA request waits this long for the phone
    code_ttl_s: int = 60
    access_token_ttl_s: int = 10 * 60
    id_token_ttl_s: int = 10 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # DPoP server nonces at the token endpoint (RFC 9449 §8): `off`, `bound` (clients registered with
    # dpop_bound_access_tokens), `always` (every DPoP token request).
    dpop_nonce: str = setting("AUTH_DPOP_NONCE", "bound")
    session_ttl_s: int = 8 * 3600
    # The live approvals stream (GET /v1/approvals/stream): a comment this often keeps proxies and clients alive
    # (the gateway cuts a stream silent for 30 s); open streams per device per auth process, one more is 429.
    sse_heartbeat_s: float = setting("AUTH_SSE_HEARTBEAT_S", 15.0)
    sse_max_streams_per_device: int = setting("AUTH_SSE_MAX_STREAMS_PER_DEVICE", 3)
    # Back-channel logout (oidc/backchannel.py): a logout token lives this long; a refused delivery waits
    # backoff * 2**(n-1) s after its n-th attempt, and is given up after max_attempts; the sender looks for due
    # deliveries this often (at once after a change in this process).
    backchannel_logout_token_ttl_s: int = 120
    backchannel_logout_backoff_s: float = setting("AUTH_BACKCHANNEL_LOGOUT_BACKOFF_S", 1.0)
    backchannel_logout_max_attempts: int = setting("AUTH_BACKCHANNEL_LOGOUT_MAX_ATTEMPTS", 6)
    backchannel_logout_timeout_s: float = 5.0
    backchannel_logout_poll_s: float = setting("AUTH_BACKCHANNEL_LOGOUT_POLL_S", 1.0)
    # Result callbacks of CIBA logins (libs/result_callbacks.py): attempt n that fails waits backoff * 2**(n-1) s.
    result_callback_attempts: int = setting("AUTH_RESULT_CALLBACK_ATTEMPTS", 6)
    result_callback_backoff_s: float = setting("AUTH_RESULT_CALLBACK_BACKOFF_S", 1.0)
    # Operators (POST /v1/clients outside the sandbox); empty: no admin API.
    admin_token: str = setting("ADMIN_TOKEN", "", repr=False)

    @property
    def sandbox(self) -> bool:
        """HARBOUR_SANDBOX (every process's, ServiceSettings): citizens may self-register (assurance `basic`) without
        a kiosk, and anyone may register a client (with the sandbox's limits)."""
        return self.service.sandbox

    @property
    def max_jwt_lifetime_s(self) -> int:
        return max(self.access_token_ttl_s, self.id_token_ttl_s, self.device_token_ttl_s)

    @classmethod
    def from_env(cls) -> "AuthSettings":
        return from_env(
            cls,
            # A base64 selfie of 2 MiB is ~2.7 MiB of JSON: auth's body limit is 4 MiB unless set.
            service=ServiceSettings.from_env("auth", max_body_bytes=4 * 1024 * 1024),
            hash_key=base64url.decode(env_required("AUTH_HASH_KEY")),
            keyring=Keyring.from_env_value(env_required("AUTH_KEK")),
            formfill_sealing_jwk=json.loads(env_required("FORMFILL_SEALING_PUBLIC_JWK")),
            sealing_jwk=json.loads(env_required("AUTH_SEALING_KEY")),
            notify_sealing_jwk=json.loads(env_required("NOTIFY_SEALING_PUBLIC_JWK")),
        )

"""formfill's settings: the shared service settings plus its keys and lifetimes."""

from __future__ import annotations

import json
from dataclasses import dataclass

from libs.crypto import Keyring
from libs.service.settings import ServiceSettings, auth_url_setting, env_required, from_env, issuer_setting, setting


@dataclass(frozen=True)
class FormfillSettings:
    service: ServiceSettings
    # Key-encryption keys of the vault (first = current); `rewrap` moves records to the current one.
    keyring: Keyring
    # The private half of the key auth seals enrolled profiles to.
    sealing_jwk: dict
    # auth's public sealing key: approval prompts' free text (purpose, field names) is sealed to it.
    auth_sealing_jwk: dict
    issuer: str = issuer_setting()
    auth_url: str = auth_url_setting()
    request_ttl_s: int = setting("FORMFILL_REQUEST_TTL_S", 5 * 60)
    # A release not read within this time is deleted unread.
    result_ttl_s: int = setting("FORMFILL_RESULT_TTL_S", 10 * 60)
    # Access tokens verified here, remembered until they expire (the least recently used dropped beyond this many);
    # the revocation list is still consulted on every request. 0: verify every time.
    token_cache_size: int = setting("FORMFILL_TOKEN_CACHE_SIZE", 1024)
    # Result callbacks (libs/result_callbacks.py): attempt n that fails waits backoff * 2**(n-1) s; given up after the last.
    result_callback_attempts: int = setting("FORMFILL_RESULT_CALLBACK_ATTEMPTS", 6)
    result_callback_backoff_s: float = setting("FORMFILL_RESULT_CALLBACK_BACKOFF_S", 1.0)

    @property
    def jwks_url(self) -> str:
        return self.auth_url + "/oidc/jwks"

    @classmethod
    def from_env(cls) -> "FormfillSettings":
        return from_env(
            cls,
            service=ServiceSettings.from_env("formfill"),
            keyring=Keyring.from_env_value(env_required("FORMFILL_KEK")),
            sealing_jwk=json.loads(env_required("FORMFILL_SEALING_KEY")),
            auth_sealing_jwk=json.loads(env_required("AUTH_SEALING_PUBLIC_JWK")),
        )

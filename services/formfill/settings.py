"""formfill's settings: the shared service settings plus its keys and lifetimes."""

from __future__ import annotations

import json
from dataclasses import dataclass

from libs.crypto import Keyring
from libs.service.settings import DEFAULT_PORTS, ServiceSettings, env, env_required


@dataclass(frozen=True)
class FormfillSettings:
    service: ServiceSettings
    issuer: str
    auth_url: str
    # Key-encryption keys of the vault (first = current); `rewrap` moves records to the current one.
    keyring: Keyring
    # The private half of the key auth seals enrolled profiles to.
    sealing_jwk: dict
    # auth's public sealing key: approval prompts' free text (purpose, field names) is sealed to it.
    auth_sealing_jwk: dict
    request_ttl_s: int = 5 * 60
    # A release not read within this time is deleted unread.
    result_ttl_s: int = 10 * 60

    @property
    def jwks_url(self) -> str:
        return self.auth_url + "/oidc/jwks"

    @classmethod
    def from_env(cls) -> "FormfillSettings":
        return cls(
            service=ServiceSettings.from_env("formfill"),
            issuer=env("ISSUER", "http://127.0.0.1:8000").rstrip("/"),
            auth_url=env("AUTH_URL", f"http://127.0.0.1:{DEFAULT_PORTS['auth']}").rstrip("/"),
            keyring=Keyring.from_env_value(env_required("FORMFILL_KEK")),
            sealing_jwk=json.loads(env_required("FORMFILL_SEALING_KEY")),
            auth_sealing_jwk=json.loads(env_required("AUTH_SEALING_PUBLIC_JWK")),
            request_ttl_s=int(env("FORMFILL_REQUEST_TTL_S", "300")),
            result_ttl_s=int(env("FORMFILL_RESULT_TTL_S", "600")),
        )

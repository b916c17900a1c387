"""signing's settings: the shared service settings, the HSM (PKCS#11) and lifetimes.

The HSM is named by module path, token label (or slot) and user PIN only: in
the dev stack SoftHSM2's module and a token libs/devstack initialised; in
production the vendor's PKCS#11 module and its partition, with no code change.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from libs.crypto import Keyring
from libs.service.settings import DEFAULT_PORTS, ServiceSettings, env, env_required

from .sandbox import Limits

MB = 1024 * 1024


@dataclass(frozen=True)
class SigningSettings:
    service: ServiceSettings
    issuer: str
    auth_url: str
    # Key-encryption keys for documents and results at rest (first = current).
    keyring: Keyring
    pkcs11_module: str
    pkcs11_pin: str
    # auth's public sealing key: approval prompts' free text (purpose, document name) is sealed to it.
    auth_sealing_jwk: dict
    token_label: str | None = None
    token_slot: int | None = None
    request_ttl_s: int = 5 * 60
    # A signed result not fetched within this time is deleted unread.
    result_ttl_s: int = 30 * 60
    max_pdf_bytes: int = 5 * MB
    citizen_cert_days: int = 2 * 365
    crl_validity_s: int = 24 * 3600
    # Parsing untrusted PDFs / CMS: worker processes and what one job may spend (services/signing/sandbox.py).
    parsing: Limits = Limits()

    @property
    def jwks_url(self) -> str:
        return self.auth_url + "/oidc/jwks"

    @property
    def crl_url(self) -> str:
        """The issuing CA's CRL: citizen and TSA certificates point here."""
        return self.issuer + "/v1/signing/crl"

    @property
    def root_crl_url(self) -> str:
        """The root's CRL: the issuing CA's certificate points here, so a verifier that checks every
        certificate of the path (openssl -crl_check_all, pyHanko hard-fail) can."""
        return self.issuer + "/v1/signing/crl/root"

    @classmethod
    def from_env(cls) -> "SigningSettings":
        service = ServiceSettings.from_env("signing")
        max_pdf = int(env("SIGNING_MAX_PDF_BYTES", str(5 * MB)))
        if env("SIGNING_MAX_BODY_BYTES", "") == "":
            # A base64 or multipart PDF upload, plus room for the envelope.
            service = dataclasses.replace(service, max_body_bytes=max_pdf * 2 + MB)
        slot = env("SIGNING_TOKEN_SLOT", "")
        return cls(
            service=service,
            issuer=env("ISSUER", "http://127.0.0.1:8000").rstrip("/"),
            auth_url=env("AUTH_URL", f"http://127.0.0.1:{DEFAULT_PORTS['auth']}").rstrip("/"),
            keyring=Keyring.from_env_value(env_required("SIGNING_KEK")),
            pkcs11_module=env_required("SIGNING_PKCS11_MODULE"),
            pkcs11_pin=env_required("SIGNING_HSM_PIN"),
            auth_sealing_jwk=json.loads(env_required("AUTH_SEALING_PUBLIC_JWK")),
            token_label=env("SIGNING_TOKEN_LABEL", "") or None,
            token_slot=int(slot) if slot else None,
            request_ttl_s=int(env("SIGNING_REQUEST_TTL_S", "300")),
            result_ttl_s=int(env("SIGNING_RESULT_TTL_S", "1800")),
            max_pdf_bytes=max_pdf,
            parsing=Limits(workers=int(env("SIGNING_PARSE_WORKERS", "2")), cpu_s=int(env("SIGNING_PARSE_CPU_S", "2")),
                           memory_bytes=int(env("SIGNING_PARSE_MEMORY_MB", "256")) * MB,
                           wall_s=float(env("SIGNING_PARSE_WALL_S", "5"))),
        )

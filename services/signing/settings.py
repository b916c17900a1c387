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
from libs.pdf_font import checked_font, pdf_font_setting
from libs.service.settings import ServiceSettings, auth_url_setting, env, env_required, from_env, issuer_setting, setting

from .sandbox import Limits

MB = 1024 * 1024


@dataclass(frozen=True)
class SigningSettings:
    service: ServiceSettings
    # Key-encryption keys for documents and results at rest (first = current).
    keyring: Keyring
    pkcs11_module: str
    pkcs11_pin: str
    # auth's public sealing key: approval prompts' free text (purpose, document name) is sealed to it.
    auth_sealing_jwk: dict
    issuer: str = issuer_setting()
    auth_url: str = auth_url_setting()
    token_label: str | None = setting("SIGNING_TOKEN_LABEL", None, parse=lambda raw: raw or None)
    token_slot: int | None = setting("SIGNING_TOKEN_SLOT", None, parse=lambda raw: int(raw) if raw else None)
    request_ttl_s: int = setting("SIGNING_REQUEST_TTL_S", 5 * 60)
    # Result callbacks (libs/result_callbacks.py): attempt n that fails waits backoff * 2**(n-1) s; given up after the last.
    result_callback_attempts: int = setting("SIGNING_RESULT_CALLBACK_ATTEMPTS", 6)
    result_callback_backoff_s: float = setting("SIGNING_RESULT_CALLBACK_BACKOFF_S", 1.0)
    # A signed result not fetched within this time is deleted unread.
    result_ttl_s: int = setting("SIGNING_RESULT_TTL_S", 30 * 60)
    max_pdf_bytes: int = setting("SIGNING_MAX_PDF_BYTES", 5 * MB)
    # Access tokens verified here, remembered until they expire (the least recently used dropped beyond this many);
    # the revocation list is still consulted on every request. 0: verify every time.
    token_cache_size: int = setting("SIGNING_TOKEN_CACHE_SIZE", 1024)
    # The font of visible signature stamps (Latin and Chinese): checked at start, the service refuses to start without it.
    pdf_font: str = pdf_font_setting()
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
        signing = from_env(
            cls,
            service=ServiceSettings.from_env("signing"),
            keyring=Keyring.from_env_value(env_required("SIGNING_KEK")),
            pkcs11_module=env_required("SIGNING_PKCS11_MODULE"),
            pkcs11_pin=env_required("SIGNING_HSM_PIN"),
            auth_sealing_jwk=json.loads(env_required("AUTH_SEALING_PUBLIC_JWK")),
            parsing=_parsing_limits(),
        )
        checked_font(signing.pdf_font)
        # The body limit follows the PDF limit unless set: a base64 or multipart PDF upload, plus room for the envelope.
        body = ServiceSettings.from_env("signing", max_body_bytes=signing.max_pdf_bytes * 2 + MB)
        return dataclasses.replace(signing, service=body)


def _parsing_limits() -> Limits:
    # Limits (sandbox.py) holds the defaults; memory is set in MB.
    default = Limits()
    return Limits(workers=int(env("SIGNING_PARSE_WORKERS", str(default.workers))),
                  cpu_s=int(env("SIGNING_PARSE_CPU_S", str(default.cpu_s))),
                  memory_bytes=int(env("SIGNING_PARSE_MEMORY_MB", str(default.memory_bytes // MB))) * MB,
                  wall_s=float(env("SIGNING_PARSE_WALL_S", str(default.wall_s))))

"""What crosses the sandbox's boundary, without pyHanko: jobs named by module, their inputs and their outcomes.

The service process hands untrusted documents to sandbox workers (services/signing/sandbox.py) and gets back a
result or a refusal; the parsers themselves (pyHanko, in `verify.py` and `signatures.py`) are loaded by the
forkserver and its workers, and by this process only when it signs (docs/operations.md, idle RSS). So the job is
sent as a `Job` (module and function name, resolved in the worker), and what comes back — the refusals, the report
— is defined here, so unpickling it in this process loads nothing heavy either.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, model_validator

VERIFICATIONS = Counter("harbour_signing_verifications_total", "Verification reports made, by kind and verdict.", ["kind", "verdict"])


@dataclass(frozen=True)
class Job:
    """A sandbox job by reference: `module.function`, imported where it runs (a worker has it preloaded)."""

    module: str
    function: str

    @property
    def __name__(self) -> str:  # the sandbox's metrics and logs name a job by its function
        return self.function

    def __call__(self, *args: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.function)(*args)


INSPECT_UPLOAD = Job("services.signing.uploads", "inspect_upload")
PDF_REPORT = Job("services.signing.verify", "pdf_report")
CMS_REPORT = Job("services.signing.verify", "cms_report")


class InvalidPdf(ValueError):
    """The upload is not a PDF pyHanko can sign (malformed, encrypted...)."""


class InvalidAppearance(ValueError):
    """The visible signature asked for does not fit the PDF: no such page, or a box not on the page."""


class Unverifiable(ValueError):
    """The input is not a signature or a signed PDF we can even read."""


class VerifyCmsBody(BaseModel):
    __doc__ = """A detached CMS signature and what it signs: the SHA-256 of the document, or the document itself."""

    model_config = ConfigDict(extra="forbid")
    cms: str = Field(min_length=16, max_length=200_000, description="the CMS SignedData, base64 (DER)")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the signed document, hex")
    content: str | None = Field(default=None, max_length=8_000_000, description="the signed document itself, base64")

    @model_validator(mode="after")
    def _one_of(self) -> "VerifyCmsBody":
        if (self.sha256 is None) == (self.content is None):
            raise ValueError("give exactly one of sha256 or content")
        return self


class VerificationReport(BaseModel):
    __doc__ = """Per signature: signer, chain (trusted only if it reaches our root), integrity, signing time, revocation."""

    kind: Literal["cms", "pdf"]
    valid: bool
    signatures: list[dict[str, Any]]


@dataclass(frozen=True)
class Trust:
    """What a verification trusts, as DER (it crosses into a sandbox worker): our root, the issuing CA,
    the issuing CA's CRL, then the root's."""

    root: bytes
    issuing: bytes
    crls: tuple[bytes, bytes]

    def contexts(self):
        """A factory of pyHanko validation contexts (in the worker, where pyHanko is loaded)."""
        from asn1crypto import x509

        from .verify import validation_context

        root, issuing = x509.Certificate.load(self.root), x509.Certificate.load(self.issuing)
        return lambda: validation_context(root, [issuing], list(self.crls))


def counted(report: dict[str, Any]) -> dict[str, Any]:
    """Count a report in this process (the sandbox worker that made it is gone with its metrics)."""
    VERIFICATIONS.labels(report["kind"], "valid" if report["valid"] else "invalid").inc()
    return report

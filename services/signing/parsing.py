"""Untrusted documents (uploads, signatures to verify) parsed only in the sandbox's workers, its outcomes as refusals."""

from __future__ import annotations

from typing import Any

from libs.errors import Refused

from .context import Signing
from .errors import NotSignablePdf, NotVerifiable, ParsersBusy
# The jobs by reference: the parsers (pyHanko) are loaded in the workers, not in this process.
from .reports import CMS_REPORT, INSPECT_UPLOAD, PDF_REPORT, InvalidPdf, Job, Unverifiable, VerificationReport, VerifyCmsBody, counted
from .sandbox import LimitExceeded, SandboxBusy


async def _sandboxed(signing: Signing, job: Job, *args: Any, refusal: type[Exception], as_: type[Refused]) -> Any:
    """job(*args) in a sandbox worker; the job's refusal, or a limit it hit, as `as_`; a full pool as ParsersBusy."""
    try:
        return await signing.sandbox.run(job, *args)
    except refusal as exc:
        raise as_(str(exc)) from None
    except LimitExceeded as exc:
        raise as_(f"the document is refused: {exc}", limit=exc.limit) from None
    except SandboxBusy as exc:
        raise ParsersBusy(str(exc)) from None


async def check_upload(signing: Signing, pdf: bytes) -> int:
    """A PDF a relying party wants signed: its page count, once the sandbox found it signable."""
    return await _sandboxed(signing, INSPECT_UPLOAD, pdf, refusal=InvalidPdf, as_=NotSignablePdf)


async def verification_report(signing: Signing, document: bytes | VerifyCmsBody) -> VerificationReport:
    """The report on a signed PDF (bytes) or a detached CMS signature, trusting our root only."""
    job = PDF_REPORT if isinstance(document, bytes) else CMS_REPORT
    report = await _sandboxed(signing, job, document, await signing.trust(), refusal=Unverifiable, as_=NotVerifiable)
    return VerificationReport.model_validate(counted(report))

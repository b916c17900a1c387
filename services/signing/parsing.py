"""Untrusted documents (uploads, signatures to verify) parsed only in the sandbox's workers, its outcomes as refusals."""

from __future__ import annotations

import hashlib
from typing import Any

from libs.errors import Refused

from . import evidence
from .collections import EVIDENCE
from .context import Signing
from .errors import AppearanceNotOnPage, NotSignablePdf, NotVerifiable, ParsersBusy
# The jobs by reference: the parsers (pyHanko) are loaded in the workers, not in this process.
from .reports import CMS_REPORT, INSPECT_UPLOAD, PDF_REPORT, InvalidAppearance, InvalidPdf, Job, Unverifiable, VerificationReport, VerifyCmsBody, counted
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


async def check_upload(signing: Signing, pdf: bytes, appearance: dict[str, Any] | None = None) -> int:
    """A PDF a relying party wants signed: its page count, once the sandbox found it signable (and the appearance's
    page and box on it, when one is asked for)."""
    try:
        return await _sandboxed(signing, INSPECT_UPLOAD, pdf, appearance, refusal=InvalidPdf, as_=NotSignablePdf)
    except InvalidAppearance as exc:
        raise AppearanceNotOnPage(str(exc)) from None


async def verification_report(signing: Signing, document: bytes | VerifyCmsBody) -> VerificationReport:
    """The report on a signed PDF (bytes) or a detached CMS signature, trusting our root only."""
    job = PDF_REPORT if isinstance(document, bytes) else CMS_REPORT
    report = await _sandboxed(signing, job, document, await signing.trust(), refusal=Unverifiable, as_=NotVerifiable)
    await _with_evidence(signing, document, report)
    return VerificationReport.model_validate(counted(report))


async def _with_evidence(signing: Signing, document: bytes | VerifyCmsBody, report: dict[str, Any]) -> None:
    """Each signature signing made gets its sole-control evidence (`sole_control`), checked again; one it did not
    make (or made before evidence was kept) gets `sole_control: null`."""
    for signature in report["signatures"]:
        if signature.get("type") != "signature":
            continue
        kept = await signing.db[EVIDENCE].find_one({"_id": signature.get("signature_id")})
        if kept is None:
            signature["sole_control"] = None
            continue
        if isinstance(document, bytes):  # the approved PDF is the revision the signature extends
            length = kept.get("signed_length") or 0
            covers = len(document) >= length and hashlib.sha256(document[:length]).hexdigest() == kept["sha256"]
        else:
            covers = signature.get("signed_sha256") == kept["sha256"]
        signature["sole_control"] = evidence.report(signing.cipher, kept, covers=covers)

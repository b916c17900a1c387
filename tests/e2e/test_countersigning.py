"""Countersigning end to end through the gateway: three citizens sign the same PDF one after another.

Each signature goes into its own new field in its own incremental update, so the earlier signatures' byte
ranges are never touched; poppler's `pdfsig` (NSS trusting our root only) and pyHanko's validator check every
signature, and the verification report keeps each signer's sole-control evidence.
"""

from __future__ import annotations

import hashlib
import io
import re

import pytest
import requests
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from ..support.citizens import enrolled_app
from ..support.oidc import logged_in_token
from ..support.signing import (
    PDF,
    application_pdf,
    both_crls,
    create,
    dss_of,
    lta_validation,
    ocsp_statuses,
    pdfsig,
    prompt_for,
    result_of,
    root_only_context,
    signing_rp,
    wait_for,
)

pytestmark = pytest.mark.e2e
SCOPE = "openid sign"


async def signed_by(platform, metadata, rp, app, pdf: bytes, name: str) -> bytes:
    """The relying party asks this citizen (logged in) to sign `pdf`; the citizen approves; the signed PDF."""
    token = await logged_in_token(metadata, rp, app, SCOPE)
    request = await create(platform, token, data=pdf, params={"document_name": name}, headers={"Content-Type": PDF})
    prompt = await prompt_for(app, request["request_id"])
    assert prompt["details"]["sha256"] == hashlib.sha256(pdf).hexdigest()  # the citizen approves this revision
    await app.approve(prompt["approval_id"])
    await wait_for(platform, token, request["request_id"], "signed")
    result = result_of(platform, token, request["request_id"])
    assert result.status_code == 200 and result.headers["Content-Type"] == PDF, result.text[:300]
    return result.content


async def test_three_citizens_countersign_one_pdf_and_every_verifier_checks_each(platform, kiosk, metadata, trust, tmp_path):
    rp = signing_rp(platform, "Harbour Lease Office")
    apps = [await enrolled_app(platform, kiosk, tmp_path, f"countersign-{who}") for who in "abc"]
    revisions = [application_pdf("Lease of berth 7, signed by three parties")]
    for app in apps:
        revisions.append(await signed_by(platform, metadata, rp, app, revisions[-1], "berth-7-lease.pdf"))
    final = revisions[-1]
    # Incremental updates only: every earlier revision, signatures included, is a prefix of the next.
    for earlier, later in zip(revisions, revisions[1:]):
        assert later.startswith(earlier) and len(later) > len(earlier)
    path = tmp_path / "countersigned.pdf"
    path.write_bytes(final)
    report = pdfsig(trust, path)

    # poppler (NSS, our root only): three citizen signatures, each in its own field and valid, and three document
    # timestamps (listed; poppler does not validate those: pyHanko does, in test_signing). The certificates' trust is
    # asserted with pyHanko below: pdfsig's OCSP check of the 2nd/3rd certificate is intermittently "Unknown issue".
    blocks = re.split(r"^Signature #\d+:", report, flags=re.M)[1:]
    assert len(blocks) == 6, report
    signers = [b for b in blocks if "Common Name: Harbour ID Timestamp Authority" not in b]
    assert len(signers) == 3, report
    for block in signers:
        assert "Signature Type: ETSI.CAdES.detached" in block, block
        assert "Signature Validation: Signature is Valid." in block, block
    fields = [re.search(r"Signature Field Name: (.*)", b).group(1) for b in signers]
    assert fields == ["HarbourID-Signature", "HarbourID-Signature-2", "HarbourID-Signature-3"], report
    names = [re.search(r"Signer Certificate Common Name: (.*)", b).group(1) for b in signers]
    assert len(set(names)) == 3, names  # three people, three certificates

    # pyHanko, our root only, revocation from our CRLs (hard-fail): each signature in its own field, each valid.
    signatures = [s for s in PdfFileReader(io.BytesIO(final)).embedded_signatures if s.sig_object_type == "/Sig"]
    assert [s.field_name for s in signatures] == ["HarbourID-Signature", "HarbourID-Signature-2", "HarbourID-Signature-3"]
    crls = both_crls(platform)
    statuses = [await async_validate_pdf_signature(s, signer_validation_context=root_only_context(trust, crls)) for s in signatures]
    for status in statuses:
        assert status.intact and status.valid and status.trusted and status.bottom_line, status.pretty_print_details()
        # Each covers the whole revision it signed; what came after it is incremental updates only.
        assert status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
    # The earlier two were followed by new signature fields, filled (form filling: allowed for approval signatures);
    # the last only by its document timestamp.
    assert [s.modification_level for s in statuses] == [ModificationLevel.FORM_FILLING, ModificationLevel.FORM_FILLING,
                                                         ModificationLevel.LTA_UPDATES]
    assert [s.signed_revision for s in signatures] == sorted({s.signed_revision for s in signatures})
    # PAdES B-LTA for each: the DSS holds a good OCSP answer about each signer, and pyHanko's LTA validation passes
    # offline for each (our root only, nothing fetched).
    statuses_in_dss = ocsp_statuses(dss_of(final)[0])
    assert all(statuses_in_dss[s.signer_cert.serial_number] == "good" for s in signatures), statuses_in_dss
    for s in signatures:
        long_term = await lta_validation(s, trust["root"])
        assert long_term.ades_subindic == AdESPassed.OK, long_term

    # Our report: every signature valid, and each signer's sole-control evidence covers the revision they approved.
    verdict = requests.post(platform.gateway + "/v1/signing/verify", data=final, headers={"Content-Type": PDF}, timeout=60).json()
    assert verdict["valid"], verdict
    ours = [s for s in verdict["signatures"] if s["type"] == "signature"]
    assert [s["field"] for s in ours] == ["HarbourID-Signature", "HarbourID-Signature-2", "HarbourID-Signature-3"]
    assert [(s["indication"], s["level"]) for s in ours] == [("PASSED", "B-LTA")] * 3
    for approved, signature in zip(revisions, ours):
        sole = signature["sole_control"]
        assert sole["verified"] and sole["covers_approved_document"] is True, sole
        assert sole["approved_sha256"] == hashlib.sha256(approved).hexdigest()
    assert [s["sole_control"]["device_id"] for s in ours] == [app.profile.device_id for app in apps]

"""PAdES B-LTA and CAdES B-LT (issue 19): the validation data — a CRL and an OCSP response for every certificate below
the root, of the signer's chain and of the TSA's — travels with the signature, so it validates offline years later.

Read and validated with pyHanko (its DSS reader, its ETSI EN 319 102-1 LTA validation trusting our root alone and
fetching nothing), never with the service's own code; the verification report's level follows what the file holds."""

from __future__ import annotations

import base64
import io

from asn1crypto import cms
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko.sign.validation.status import StandardCMSSignatureStatus
from pyhanko.sign.ades.report import AdESPassed, AdESIndeterminate
from pyhanko_certvalidator import ValidationContext

from services.signing.signatures import InProcessTimeStamper
from tests.support.signing import dss_of, lta_validation, ocsp_statuses

from .conftest import CONTRACT
from .test_countersign import asked_and_approved
from .test_sign import approved


async def signed_pdf(signing, pdf: bytes | None = None) -> bytes:
    if pdf is None:
        rp, _, request_id = await approved(signing, pdf=True)
    else:
        rp, request_id = await asked_and_approved(signing, pdf)
    result = await signing.result(rp, request_id)
    assert result.status == 200, await result.text()
    return await result.read()


def revision_end(pdf: bytes, after: int) -> int:
    """Where the first revision ending after byte `after` ends (its %%EOF and line end)."""
    end = pdf.index(b"%%EOF", after) + len(b"%%EOF")
    while pdf[end:end + 1] in (b"\r", b"\n"):
        end += 1
    return end


def signature_revision_end(pdf: bytes, index: int = 0) -> int:
    _, _, start, length = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[index].byte_range
    return start + length


async def with_document_timestamp(signing, pdf: bytes) -> bytes:
    """A document timestamp from the same TSA, and nothing else: what signing made before B-LTA."""
    out = io.BytesIO()
    await signers.PdfTimeStamper(InProcessTimeStamper(signing.ctx.tsa)).async_timestamp_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False), "sha256", output=out)
    return out.getvalue()


async def levels(signing, pdf: bytes) -> list[tuple[str, str | None, str | None]]:
    answer = await signing.http.post("/v1/signing/verify", data=pdf, headers={"Content-Type": "application/pdf"})
    assert answer.status == 200, await answer.text()
    return [(s["type"], s["indication"], s.get("level")) for s in (await answer.json())["signatures"]]


async def test_a_signed_pdf_holds_a_dss_for_signer_and_tsa_and_validates_as_lta_offline(signing):
    signed = await signed_pdf(signing)
    authority = signing.ctx.authority

    signature, doc_timestamp = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    ocsps, crls = dss_of(signed)
    # An OCSP answer for every certificate below the root: the citizen's, the TSA's, the issuing CA's; all good.
    assert ocsp_statuses(ocsps) == {signature.signer_cert.serial_number: "good", authority.certs["tsa"].serial_number: "good",
                                    authority.issuing.serial_number: "good"}
    # And the CRLs that cover them: the issuing CA's (citizen, TSA), the root's (the issuing CA).
    assert sorted(c["tbs_cert_list"]["issuer"].native["common_name"] for c in crls) == [
        "Harbour ID Citizen Signing CA", "Harbour ID Root CA"]
    # The signature, the DSS in a revision of its own, then the document timestamp over it.
    assert doc_timestamp.sig_object_type == "/DocTimeStamp" and doc_timestamp.signed_revision == signature.signed_revision + 2

    result = await lta_validation(signature, authority.root)
    assert result.ades_subindic == AdESPassed.OK, result
    assert result.oldest_evidence_record_timestamp is not None  # the document timestamp is the evidence record
    assert await levels(signing, signed) == [("signature", "PASSED", "B-LTA"), ("document_timestamp", "PASSED", None)]


async def test_without_the_dss_the_same_signature_does_not_validate_offline_and_is_b_t(signing):
    signed = await signed_pdf(signing)
    # The same signature and a document timestamp over it, without the DSS revision: what signing made before.
    without = await with_document_timestamp(signing, signed[:signature_revision_end(signed)])
    signature = PdfFileReader(io.BytesIO(without)).embedded_signatures[0]
    assert PdfFileReader(io.BytesIO(without)).root.get("/DSS") is None

    result = await lta_validation(signature, signing.ctx.authority.root)

    assert result.ades_subindic != AdESPassed.OK and isinstance(result.ades_subindic, AdESIndeterminate), result
    assert await levels(signing, without) == [("signature", "PASSED", "B-T"), ("document_timestamp", "PASSED", None)]


async def test_a_dss_without_a_document_timestamp_over_it_is_b_lt(signing):
    signed = await signed_pdf(signing)
    with_dss = signed[:revision_end(signed, signature_revision_end(signed))]  # the signature and the DSS revision only
    assert dss_of(with_dss)[0] and len(PdfFileReader(io.BytesIO(with_dss)).embedded_signatures) == 1

    assert await levels(signing, with_dss) == [("signature", "PASSED", "B-LT")]


async def test_a_countersigned_pdf_keeps_every_signature_at_b_lta(signing):
    first = await signed_pdf(signing)
    second = await signed_pdf(signing, first)
    assert second.startswith(first)

    reader = PdfFileReader(io.BytesIO(second))
    signatures = [s for s in reader.embedded_signatures if s.sig_object_type == "/Sig"]
    assert len(signatures) == 2 and signatures[0].signer_cert != signatures[1].signer_cert
    statuses = ocsp_statuses(dss_of(second)[0])
    assert all(statuses[s.signer_cert.serial_number] == "good" for s in signatures)  # both signers' answers in the DSS
    for signature in signatures:
        result = await lta_validation(signature, signing.ctx.authority.root)
        assert result.ades_subindic == AdESPassed.OK, result
    assert await levels(signing, second) == [("signature", "PASSED", "B-LTA"), ("document_timestamp", "PASSED", None)] * 2


async def test_a_hash_signature_carries_its_validation_data_and_reaches_b_lt(signing):
    rp, _, request_id = await approved(signing)
    signature = await (await signing.result(rp, request_id)).read()
    authority = signing.ctx.authority

    signed_data = cms.ContentInfo.load(signature)["content"]
    revocation = list(signed_data["crls"])
    crls = [r.chosen for r in revocation if r.name == "crl"]
    ocsps = [r.chosen["other_rev_info"] for r in revocation if r.name == "other"]
    assert {r.chosen["other_rev_info_format"].native for r in revocation if r.name == "other"} == {"ocsp_response"}
    signer = signed_data["signer_infos"][0]["sid"].chosen["serial_number"].native
    assert ocsp_statuses(ocsps) == {signer: "good", authority.certs["tsa"].serial_number: "good",
                                    authority.issuing.serial_number: "good"}
    assert len(crls) == 2
    # pyHanko, trusting our root alone, finds every answer it needs in the signature itself (hard-fail, nothing fetched).
    context = ValidationContext(trust_roots=[authority.root], crls=crls, ocsps=ocsps, allow_fetching=False,
                                revocation_mode="hard-fail")
    status = await async_validate_detached_cms(CONTRACT, signed_data, signer_validation_context=context,
                                               ts_validation_context=context)
    assert isinstance(status, StandardCMSSignatureStatus) and status.bottom_line and status.trusted, status.pretty_print_details()

    answer = await signing.http.post("/v1/signing/verify", json={"cms": base64.b64encode(signature).decode(),
                                                                 "content": base64.b64encode(CONTRACT).decode()})
    [report] = (await answer.json())["signatures"]
    assert (report["indication"], report["level"]) == ("PASSED", "B-LT")  # no archive timestamp: CAdES stops at B-LT

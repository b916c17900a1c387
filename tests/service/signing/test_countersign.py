"""Countersigning (issue 19): a PDF already signed by someone else gets our signature in a new field, in an incremental
update; a PDF whose certification forbids any change is refused cleanly (the input's fault), never retried."""

from __future__ import annotations

import io

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers

from tests.support.signing import application_pdf

from .conftest import problem
from .test_etsi_report import another_ca_signer


async def signed_elsewhere(field_name: str, **meta) -> bytes:
    out = io.BytesIO()
    await signers.PdfSigner(signers.PdfSignatureMetadata(field_name=field_name, **meta), signer=another_ca_signer()).async_sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(application_pdf("Signed by someone else first")), strict=False), output=out)
    return out.getvalue()


async def asked_and_approved(signing, pdf: bytes):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    answer = await signing.ask_pdf(rp, pdf, sub=citizen.sub)
    assert answer.status == 201, await answer.text()
    request_id = (await answer.json())["request_id"]
    await signing.learn(citizen.phone.decided(await signing.prompt(request_id)))
    return rp, request_id


async def test_a_pdf_signed_elsewhere_in_our_field_name_is_countersigned_in_a_new_field(signing):
    theirs = await signed_elsewhere("HarbourID-Signature")  # even the name we would pick first is taken
    rp, request_id = await asked_and_approved(signing, theirs)

    status = await (await signing.status(rp, request_id)).json()
    assert status["status"] == "signed", status
    result = await signing.result(rp, request_id)
    signed = await result.read()
    assert signed.startswith(theirs)  # an incremental update: their signature's bytes untouched
    names = [(s.field_name, s.sig_object_type) for s in PdfFileReader(io.BytesIO(signed)).embedded_signatures]
    assert names[:2] == [("HarbourID-Signature", "/Sig"), ("HarbourID-Signature-2", "/Sig")]
    assert names[2][1] == "/DocTimeStamp"


async def test_a_certified_pdf_that_allows_no_change_is_refused_not_retried(signing):
    locked = await signed_elsewhere("Author", certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES)
    rp, request_id = await asked_and_approved(signing, locked)  # the handler returns: nothing raised, nothing to retry

    status = await (await signing.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("refused", "unsignable-pdf")
    refused = await signing.result(rp, request_id)
    assert refused.status == 403 and (await problem(refused))["type"].endswith("unsignable-pdf")
    assert await signing.ctx.db["documents"].count_documents({"_id": request_id}) == 0

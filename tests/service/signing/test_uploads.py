"""A PDF to sign arrives as application/pdf (its name in the query) or as multipart/form-data, within the size limit."""

from __future__ import annotations

import hashlib

from aiohttp import FormData

from tests.support.signing import application_pdf

from .conftest import SigningUnderTest, problem


async def test_a_multipart_upload_names_the_document_in_a_field(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    pdf = application_pdf("Berth application, multipart")
    form = FormData()
    form.add_field("document_name", "Berth application")
    form.add_field("purpose", "Apply for a berth")
    form.add_field("document", pdf, filename="berth.pdf", content_type="application/pdf")

    answer = await signing.http.post("/v1/signing/requests", data=form, headers=signing.rp_token(rp, sub=citizen.sub))

    assert answer.status == 201, await answer.text()
    request_id = (await answer.json())["request_id"]
    prompt = await signing.prompt(request_id)
    assert (prompt.purpose, prompt.details["document_name"]) == ("Apply for a berth", "Berth application")
    assert prompt.details["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert prompt.details["sha256_start"] == hashlib.sha256(pdf).hexdigest()[:16]


async def test_a_multipart_upload_without_the_document_is_malformed(signing):
    rp = await signing.relying_party()
    form = FormData(default_to_multipart=True)
    form.add_field("document_name", "Nothing attached")
    answer = await signing.http.post("/v1/signing/requests", data=form, headers=signing.rp_token(rp))
    assert answer.status == 400 and (await problem(answer))["detail"] == "the multipart body has no `document` part"


async def test_a_pdf_over_the_limit_is_refused(start_service, auth_stand_in, service_secrets, now_clock):
    small = await SigningUnderTest.start(start_service, auth_stand_in, now_clock, service_secrets, SIGNING_MAX_PDF_BYTES="2000")
    rp = await small.relying_party()
    answer = await small.ask_pdf(rp, application_pdf("x" * 10) + b"%" * 4000)
    assert answer.status == 413 and (await problem(answer))["detail"] == "the PDF is larger than 2000 bytes"


async def test_unknown_query_parameters_are_refused(signing):
    rp = await signing.relying_party()
    answer = await signing.http.post("/v1/signing/requests", data=application_pdf(), params={"document_name": "A", "colour": "red"},
                                     headers={**signing.rp_token(rp), "Content-Type": "application/pdf"})
    assert answer.status == 422 and (await problem(answer))["type"].endswith("/validation-failed")

"""Uploads and signatures to verify are parsed in the sandbox; what it refuses is a 422 naming the reason."""

from __future__ import annotations

from .conftest import problem


async def test_a_file_that_is_no_pdf_is_refused_before_anything_is_stored(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)

    answer = await signing.ask_pdf(rp, b"GIF89a not a pdf", sub=citizen.sub)

    assert answer.status == 422
    body = await problem(answer)
    assert (body["type"].split("/")[-1], body["title"]) == ("invalid-pdf", "Not a signable PDF")
    assert "no %PDF- header" in body["detail"]
    assert await signing.ctx.db["requests"].count_documents({}) == 0


async def test_a_signature_that_cannot_be_read_is_unverifiable(signing):
    answer = await signing.http.post("/v1/signing/verify", json={"cms": "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==", "sha256": "0" * 64})
    assert answer.status == 422
    body = await problem(answer)
    assert (body["type"].split("/")[-1], body["title"]) == ("unverifiable", "Not a verifiable signature")


async def test_an_upload_of_another_media_type_is_refused(signing):
    rp = await signing.relying_party()
    answer = await signing.http.post("/v1/signing/requests", data=b"hello", headers={**signing.rp_token(rp), "Content-Type": "text/plain"})
    assert answer.status == 415

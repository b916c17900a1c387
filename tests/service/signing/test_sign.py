"""The citizen approves: signing checks the device's signature itself, then signs with the citizen's key in the HSM."""

from __future__ import annotations

import base64

from asn1crypto import cms

from tests.support.auth_stand_in import outbox_topics, published

from .conftest import CONTRACT, CONTRACT_SHA256


async def approved(signing, *, pdf: bool = False):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    asked = await (signing.ask_pdf(rp, sub=citizen.sub) if pdf else signing.ask(rp, sub=citizen.sub))
    request_id = (await asked.json())["request_id"]
    await signing.learn(citizen.phone.decided(await signing.prompt(request_id)))
    return rp, citizen, request_id


async def test_a_hash_is_signed_as_a_detached_cms_that_verifies(signing):
    rp, citizen, request_id = await approved(signing)

    status = await (await signing.status(rp, request_id)).json()
    assert status["status"] == "signed" and status["sub"] == citizen.sub
    assert status["signed_at"] == signing.clock.now().replace(microsecond=0).isoformat()
    result = await signing.result(rp, request_id)
    assert result.status == 200 and result.content_type == "application/pkcs7-signature"
    assert result.headers["Content-Disposition"] == f'attachment; filename="signed-{request_id}.p7s"'
    signature = await result.read()
    signed_attrs = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]["signed_attrs"]
    assert {a["type"].native: a["values"][0].native for a in signed_attrs}["message_digest"] == bytes.fromhex(CONTRACT_SHA256)
    report = await signing.http.post("/v1/signing/verify", json={"cms": base64.b64encode(signature).decode(),
                                                                 "content": base64.b64encode(CONTRACT).decode()})
    assert report.status == 200, await report.text()
    verdict = await report.json()
    assert verdict["valid"] and verdict["kind"] == "cms"
    # Not a secret release: it can be fetched again until it expires.
    assert (await signing.result(rp, request_id)).status == 200


async def test_a_pdf_is_signed_with_a_document_timestamp(signing):
    rp, _, request_id = await approved(signing, pdf=True)

    result = await signing.result(rp, request_id)

    assert result.status == 200 and result.content_type == "application/pdf"
    signed = await result.read()
    report = await signing.http.post("/v1/signing/verify", data=signed, headers={"Content-Type": "application/pdf"})
    verdict = await report.json()
    assert verdict["valid"] and [s["type"] for s in verdict["signatures"]] == ["signature", "document_timestamp"]
    assert await signing.ctx.db["documents"].count_documents({"_id": request_id}) == 0  # the upload is gone once signed


async def test_the_first_signature_issues_a_certificate_and_the_relying_party_is_told(signing):
    rp, citizen, request_id = await approved(signing)
    serial = (await (await signing.status(rp, request_id)).json())["certificate_serial"]

    [issued] = await published(signing.ctx, "certificate.issued", serial)
    assert issued.data["account_id"] == citizen.account_id
    [completed] = await published(signing.ctx, "signature.completed", request_id)
    assert completed.data == {"request_id": request_id, "sub": citizen.sub, "kind": "cms", "sha256": CONTRACT_SHA256,
                              "certificate_serial": serial, "signed_at": signing.clock.now().replace(microsecond=0).isoformat()}
    assert await outbox_topics(signing.ctx, "signature.completed") == [f"agency.{rp.client_id}.events"]
    audits = {e.data["action"]: e.data for e in await published(signing.ctx, "audit.recorded", citizen.account_id)}
    assert set(audits) == {"certificate.issue", "signature.create"}
    # The citizen's record of the signature: for whom, which request, which kind; not the document's name.
    assert audits["signature.create"] == {"action": "signature.create", "actor": citizen.phone.device_id, "outcome": "success",
                                          "client_id": rp.client_id, "request_id": request_id, "kind": "cms", "serial": serial}


async def test_the_next_signature_uses_the_same_certificate(signing):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    serials = []
    for _ in range(2):
        request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]
        await signing.learn(citizen.phone.decided(await signing.prompt(request_id)))
        serials.append((await (await signing.status(rp, request_id)).json())["certificate_serial"])
    assert serials[0] == serials[1]
    assert len(await published(signing.ctx, "certificate.issued")) == 1

"""Sole control (issue 19): the prompt binds the document's full SHA-256; signing checks the device-signed decision over
exactly the hash it is about to sign before asking the HSM anything, keeps the evidence, and its verification reports it."""

from __future__ import annotations

import base64
import hashlib

from prometheus_client import REGISTRY

from libs.approvals import verify_decision
from libs.tokens import load_public_jwk
from tests.support.auth_stand_in import published
from tests.support.signing import application_pdf

from .conftest import CONTRACT, CONTRACT_SHA256, problem


def hsm_operations() -> dict[str, float]:
    """Every key generated and every hash signed by the HSM in this process so far (hsm.py's latency histogram)."""
    return {op: REGISTRY.get_sample_value("harbour_signing_hsm_operation_seconds_count", {"operation": op}) or 0.0
            for op in ("sign", "generate_key")}


async def asked(signing, *, pdf: bytes | None = None):
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    answer = await (signing.ask_pdf(rp, pdf, sub=citizen.sub) if pdf is not None else signing.ask(rp, sub=citizen.sub))
    request_id = (await answer.json())["request_id"]
    return rp, citizen, request_id, await signing.prompt(request_id)


async def test_a_hash_altered_after_approval_is_refused_before_any_hsm_call(signing):
    rp, citizen, request_id, prompt = await asked(signing)
    decision = citizen.phone.decided(prompt)  # the citizen approved what the phone showed
    # Then the stored hash is altered: same first 16 hex digits (what the phone shows), another document.
    altered = CONTRACT_SHA256[:16] + hashlib.sha256(b"another document").hexdigest()[16:]
    await signing.ctx.db["requests"].update_one({"_id": request_id}, {"$set": {"sha256": altered}})
    before = hsm_operations()

    await signing.learn(decision)

    status = await (await signing.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("refused", "decision-mismatch")
    assert hsm_operations() == before  # no key generated, nothing signed
    assert await published(signing.ctx, "certificate.issued") == []
    assert await signing.ctx.db["evidence"].count_documents({"request_id": request_id}) == 0
    refused = await signing.result(rp, request_id)
    assert refused.status == 403 and (await problem(refused))["type"].endswith("decision-mismatch")
    actions = [(e.data["action"], e.data.get("reason")) for e in await published(signing.ctx, "audit.recorded", citizen.account_id)]
    assert ("signature.refuse", "decision-mismatch") in actions


async def test_a_pdf_swapped_after_approval_is_refused_before_any_hsm_call(signing):
    """The request's stored hash untouched, the stored PDF replaced: the hash of the bytes about to be signed is not the
    one the citizen approved (checked in _sign, right before the HSM)."""
    rp, citizen, request_id, prompt = await asked(signing, pdf=application_pdf("Application for a harbour berth"))
    swapped = application_pdf("Transfer of the berth to someone else")
    await signing.ctx.db["documents"].update_one({"_id": request_id}, {"$set": {
        "sealed": signing.ctx.cipher.seal_bytes(swapped, record_id=request_id, field="pdf")}})
    before = hsm_operations()

    await signing.learn(citizen.phone.decided(prompt))

    status = await (await signing.status(rp, request_id)).json()
    assert (status["status"], status["error"]) == ("refused", "decision-mismatch")
    assert hsm_operations() == before
    assert await signing.ctx.db["documents"].count_documents({"_id": request_id}) == 0


async def test_the_evidence_is_kept_and_the_verification_reports_it(signing):
    rp, citizen, request_id, prompt = await asked(signing)
    assert prompt.details["sha256"] == CONTRACT_SHA256
    before = hsm_operations()

    await signing.learn(citizen.phone.decided(prompt))

    assert hsm_operations()["sign"] > before["sign"]
    [kept] = await signing.ctx.db["evidence"].find({"request_id": request_id}).to_list()
    assert kept["sha256"] == CONTRACT_SHA256 and kept["prompt_digest"] == prompt.digest()
    assert kept["device_id"] == citizen.phone.device_id and "Water contract" not in str(kept)  # free text encrypted
    signature = await (await signing.result(rp, request_id)).read()

    report = await signing.http.post("/v1/signing/verify", json={"cms": base64.b64encode(signature).decode(),
                                                                 "content": base64.b64encode(CONTRACT).decode()})
    assert report.status == 200, await report.text()
    [verdict] = (await report.json())["signatures"]
    sole = verdict["sole_control"]
    assert sole["verified"] and sole["problems"] == [] and sole["covers_approved_document"] is True
    assert sole["approved_sha256"] == CONTRACT_SHA256 and sole["prompt"]["details"]["sha256"] == CONTRACT_SHA256
    assert "document_name" not in sole["prompt"]["details"] and "account_id" not in sole["prompt"]
    assert sole["certificate_serial"] == (await (await signing.status(rp, request_id)).json())["certificate_serial"]
    # Anyone can check the decision with the key reported.
    claims = verify_decision(sole["decision_jws"], load_public_jwk(sole["device_jwk"]), approval_id=prompt.approval_id,
                             digest=sole["prompt_digest"], at=signing.clock.now())
    assert claims.decision == "approve"

    # The same CMS presented for another document: the signature does not cover what the citizen approved.
    other = await signing.http.post("/v1/signing/verify", json={"cms": base64.b64encode(signature).decode(),
                                                                "sha256": hashlib.sha256(b"other").hexdigest()})
    [other_verdict] = (await other.json())["signatures"]
    assert other_verdict["sole_control"]["covers_approved_document"] is False
    assert not other_verdict["sole_control"]["verified"]


async def test_a_signed_pdf_reports_the_approved_revision(signing):
    original = application_pdf()
    rp, citizen, request_id, prompt = await asked(signing, pdf=original)

    await signing.learn(citizen.phone.decided(prompt))

    signed = await (await signing.result(rp, request_id)).read()
    verdict = await (await signing.http.post("/v1/signing/verify", data=signed, headers={"Content-Type": "application/pdf"})).json()
    signature, stamp = verdict["signatures"]
    assert signature["sole_control"]["verified"] and signature["sole_control"]["covers_approved_document"] is True
    assert signature["sole_control"]["approved_sha256"] == hashlib.sha256(original).hexdigest()
    assert "sole_control" not in stamp

"""Signing end to end through the gateway, checked by verifiers written elsewhere.

The citizen approves with the reference app; the results are checked with
OpenSSL (`cms -verify`, `ts -verify`), poppler's `pdfsig` (NSS trusting our
root only) and pyHanko's validator trusting only our root — never with the
service's own code. Then: an altered PDF fails every verifier, a suspended
identity's certificate is on the CRL and reported revoked, a basic citizen
cannot sign, and the token refuses to export a private key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import subprocess
import sys
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests
from asn1crypto import cms, tsp
from asn1crypto import crl as asn1_crl
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp

from clients.citizen_app import AppError
from libs.approvals import verify_decision
from libs.events import CloudEvent, agency_topic
from libs.tokens import load_public_jwk

from ..support.broker import all_messages
from ..support.calls import bearer, refusal, refused_with
from ..support.citizens import basic_citizen, enrolled_app
from ..support.metrics import held_requests
from ..support.oidc import claims_of, client_token, logged_in_token
from ..support.operator import admin
from ..support.polling import eventually
from ..support.signing import (
    PDF,
    application_pdf,
    both_crls,
    create,
    crl_der,
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
SCOPE = "openid sign"  # what the relying party logs the citizen in with


# -- fixtures and helpers ------------------------------------------------------------------------

def signer_checked_against_crls(platform, trust: dict, p7s: Path, content: Path, folder: Path) -> subprocess.CompletedProcess:
    """The CMS's signer certificate (written out by `openssl cms -verify -signer`), then `openssl verify
    -crl_check_all`: every certificate of the path must have a CRL that clears it."""
    signer = folder / "signer.pem"
    ran = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7s), "-content", str(content),
                  "-CAfile", str(trust["dir"] / "root.pem"), "-out", "/dev/null", "-signer", str(signer))
    assert ran.returncode == 0, ran.stderr
    files = []
    for name, der in zip(("issuing", "root"), both_crls(platform)):
        (folder / f"{name}.crl").write_bytes(der)
        ran = openssl("crl", "-inform", "DER", "-in", str(folder / f"{name}.crl"), "-out", str(folder / f"{name}.crl.pem"))
        assert ran.returncode == 0, ran.stderr
        files += ["-CRLfile", str(folder / f"{name}.crl.pem")]
    return openssl("verify", "-crl_check_all", "-CAfile", str(trust["dir"] / "root.pem"),
                   "-untrusted", str(trust["dir"] / "issuing.pem"), *files, str(signer))


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60)


def tampered(pdf: bytes) -> bytes:
    """Change one digit of the original revision's creation date: same length, inside the signed byte range."""
    position = pdf.index(b"/CreationDate (D:") + len(b"/CreationDate (D:")
    digit = pdf[position:position + 1]
    return pdf[:position] + (b"1" if digit != b"1" else b"2") + pdf[position + 1:]


async def agency_events(platform, client_id: str) -> list[CloudEvent]:
    """The client's own topic, each event once (delivery is at-least-once: consumers deduplicate on the id)."""
    events = [CloudEvent.from_json(m.value) for m in await all_messages(platform.infra.kafka_bootstrap, [agency_topic(client_id)])]
    return list({e.id: e for e in events}.values())


def verify_api(platform, **kwargs) -> requests.Response:
    return requests.post(platform.gateway + "/v1/signing/verify", timeout=60, **kwargs)


# -- the journeys --------------------------------------------------------------------------------

async def test_logged_in_pdf_is_signed_and_every_verifier_agrees(platform, kiosk, metadata, trust, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path, "pdf-phone")
    rp = signing_rp(platform, "Harbour Marine Department", agency_events=True)  # it reads its topic (below)
    token = await logged_in_token(metadata, rp, app, SCOPE)
    original = application_pdf()
    request = await create(platform, token, data=original, params={"document_name": "berth-application.pdf"},
                           headers={"Content-Type": PDF})
    assert request["kind"] == "pdf" and "app_link" not in request  # logged in: the citizen is known

    prompt = await prompt_for(app, request["request_id"])
    assert prompt["requester"]["client_name"] == "Harbour Marine Department"
    assert prompt["details"]["document_name"] == "berth-application.pdf"
    assert prompt["details"]["sha256_start"] == hashlib.sha256(original).hexdigest()[:16]
    assert prompt["details"]["sha256"] == hashlib.sha256(original).hexdigest()  # the decision binds the whole hash
    await app.approve(prompt["approval_id"])
    done = await wait_for(platform, token, request["request_id"], "signed")
    assert done["sub"] == claims_of(token)["sub"] and done["certificate_serial"]

    result = result_of(platform, token, request["request_id"])
    assert result.status_code == 200 and result.headers["Content-Type"] == PDF
    signed = result.content
    assert signed.startswith(original[:8]) and len(signed) > len(original)
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)

    # poppler (NSS), trusting our root only: the signature is valid and trusted, and the timestamp is there.
    report = pdfsig(trust, path)
    assert "Signature Validation: Signature is Valid." in report, report
    assert "Certificate Validation: Certificate is Trusted." in report, report
    assert "Signature Type: ETSI.CAdES.detached" in report
    assert "Signer Certificate Common Name: Harbour ID Timestamp Authority" in report  # the document timestamp

    # pyHanko's validator, trusting our root only.
    reader = PdfFileReader(io.BytesIO(signed))
    signature, doc_timestamp = reader.embedded_signatures
    # Revocation checked for the signer, the TSA and the issuing CA, from our CRLs alone (hard-fail).
    crls = both_crls(platform)
    status = await async_validate_pdf_signature(signature, signer_validation_context=root_only_context(trust, crls))
    assert status.intact and status.valid and status.trusted and status.bottom_line
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted  # the signature timestamp (B-T)
    stamp = await async_validate_pdf_timestamp(doc_timestamp, validation_context=root_only_context(trust, crls))
    assert stamp.intact and stamp.valid and stamp.trusted
    assert stamp.signing_cert.subject.native["common_name"] == "Harbour ID Timestamp Authority"
    # PAdES B-LTA: the DSS (read by pyHanko) holds OCSP answers for the signer, the TSA and the issuing CA and both
    # CRLs, and pyHanko's LTA validation passes from the file alone (our root trusted, nothing fetched).
    ocsps, dss_crls = dss_of(signed)
    assert ocsp_statuses(ocsps) == {signature.signer_cert.serial_number: "good", doc_timestamp.signer_cert.serial_number: "good",
                                    trust["issuing"].serial_number: "good"}
    assert sorted(c["tbs_cert_list"]["issuer"].dump() for c in dss_crls) == sorted(
        [trust["issuing"].subject.dump(), trust["root"].subject.dump()])
    long_term = await lta_validation(signature, trust["root"])
    assert long_term.ades_subindic == AdESPassed.OK, long_term

    # Our own report agrees.
    verdict = verify_api(platform, data=signed, headers={"Content-Type": PDF}).json()
    assert verdict["valid"] and [s["type"] for s in verdict["signatures"]] == ["signature", "document_timestamp"]
    assert verdict["signatures"][0]["revocation"]["status"] == "good"
    # In ETSI EN 319 102-1's words: passed, at B-LTA (a signature timestamp, the DSS, a document timestamp over it).
    assert [(s["indication"], s["sub_indication"]) for s in verdict["signatures"]] == [("PASSED", None)] * 2
    assert verdict["signatures"][0]["level"] == "B-LTA"
    assert [t["type"] for t in verdict["signatures"][0]["timestamps"]] == ["signature_timestamp", "document_timestamp"]
    assert verdict["signatures"][0]["chain"]["path"][0].startswith("Common Name: Harbour ID Root CA")
    # Sole control: the evidence signing kept (checked before the HSM signed), reported and checked again.
    sole = verdict["signatures"][0]["sole_control"]
    assert sole["verified"] and sole["covers_approved_document"] is True, sole
    assert sole["approved_sha256"] == hashlib.sha256(original).hexdigest() and sole["prompt"]["approval_id"] == prompt["approval_id"]
    assert sole["device_id"] == app.profile.device_id and sole["decided_at"] and sole["checked_at"]
    assert verify_decision(sole["decision_jws"], load_public_jwk(sole["device_jwk"]), approval_id=prompt["approval_id"],
                           digest=sole["prompt_digest"], at=datetime.fromisoformat(sole["decided_at"])).decision == "approve"
    assert "berth-application.pdf" not in json.dumps(sole)  # no free text in the report

    # Altered after signing: every verifier says no.
    altered = tampered(signed)
    altered_path = tmp_path / "altered.pdf"
    altered_path.write_bytes(altered)
    report = pdfsig(trust, altered_path)
    assert "Signature Validation: Signature is Valid." not in report, report
    status = await async_validate_pdf_signature(PdfFileReader(io.BytesIO(altered)).embedded_signatures[0],
                                                signer_validation_context=root_only_context(trust))
    assert not status.intact and not status.bottom_line
    altered_verdict = verify_api(platform, data=altered, headers={"Content-Type": PDF}).json()
    assert altered_verdict["valid"] is False
    assert (altered_verdict["signatures"][0]["indication"], altered_verdict["signatures"][0]["sub_indication"]) == ("FAILED", "HASH_FAILURE")

    # The relying party's own topic: its pairwise sub, never an account id.
    async def completed():
        return next((e for e in await agency_events(platform, rp["client_id"]) if e.type == "signature.completed"), None)

    event = await eventually(completed, timeout_s=20)
    assert event.data["sub"] == claims_of(token)["sub"] and event.data["request_id"] == request["request_id"]
    assert app.profile.account_id not in json.dumps(event.data)


async def test_anonymous_hash_is_signed_as_detached_cades_that_openssl_accepts(platform, kiosk, metadata, trust, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path, "cms-phone")
    rp = signing_rp(platform, "Harbour Lands Registry")
    token = client_token(metadata, rp, "sign")
    document = f"Deed of assignment {uuid.uuid4()}\n".encode()
    (tmp_path / "deed.txt").write_bytes(document)
    request = await create(platform, token, json={"document_name": "deed.txt", "sha256": hashlib.sha256(document).hexdigest()})
    assert request["app_link"] == f"harbourid://sign?request={request['request_id']}"
    # The relying party asks for the result once, before the citizen has seen anything: held through the gateway
    # until the signature is stored (?wait=), instead of polling.
    held = asyncio.create_task(asyncio.to_thread(
        requests.get, f"{platform.gateway}/v1/signing/requests/{request['request_id']}/result", params={"wait": "20"},
        headers={"Authorization": f"Bearer {token}"}, timeout=30))
    await eventually(lambda: held_requests(platform, "signing") == 1, timeout_s=10)

    shown = (await app.open_link(request["app_link"]))["prompt"]
    assert shown["details"]["document_name"] == "deed.txt" and shown["requester"]["client_name"] == "Harbour Lands Registry"
    result = await asyncio.wait_for(held, 25)
    assert result.status_code == 200 and result.headers["Content-Type"] == "application/pkcs7-signature"
    assert result.content == result_of(platform, token, request["request_id"]).content
    (tmp_path / "deed.p7s").write_bytes(result.content)

    # OpenSSL, trusting the root alone (the signature carries the intermediate).
    ran = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "deed.p7s"), "-content", str(tmp_path / "deed.txt"),
                  "-CAfile", str(trust["dir"] / "root.pem"), "-out", "/dev/null")
    assert ran.returncode == 0 and b"Verification successful" in ran.stderr, ran.stderr
    (tmp_path / "other.txt").write_bytes(document + b"!")
    ran = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "deed.p7s"), "-content", str(tmp_path / "other.txt"),
                  "-CAfile", str(trust["dir"] / "root.pem"), "-out", "/dev/null")
    assert ran.returncode != 0

    # The signer's certificate passes OpenSSL's revocation check of the whole path: the issuing CA's CRL
    # clears the citizen, the root's CRL (at the issuing CA's distribution point) clears the issuing CA.
    checked = signer_checked_against_crls(platform, trust, tmp_path / "deed.p7s", tmp_path / "deed.txt", tmp_path)
    assert checked.returncode == 0 and b"signer.pem: OK" in checked.stdout, checked.stdout + checked.stderr
    # CAdES-B-LT: the signature carries those CRLs itself (SignedData.crls), so OpenSSL checks the whole path's
    # revocation with nothing but our root — no CRL file given.
    ran = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "deed.p7s"), "-content", str(tmp_path / "deed.txt"),
                  "-CAfile", str(trust["dir"] / "root.pem"), "-crl_check_all", "-out", "/dev/null")
    assert ran.returncode == 0 and b"Verification successful" in ran.stderr, ran.stderr
    issuing_points = trust["issuing"].crl_distribution_points
    assert [p["distribution_point"].native[0] for p in issuing_points] == [platform.gateway + "/v1/signing/crl/root"]

    # The signature timestamp (CAdES-B-T): the TSA's token over the signature value, checked by `openssl ts`.
    signer_info = cms.ContentInfo.load(result.content)["content"]["signer_infos"][0]
    attributes = {a["type"].native: a["values"][0] for a in signer_info["unsigned_attrs"]}
    token_der = attributes["signature_time_stamp_token"].dump()
    (tmp_path / "sig.tst").write_bytes(token_der)
    digest = hashlib.sha256(signer_info["signature"].native).hexdigest()
    ran = openssl("ts", "-verify", "-token_in", "-in", str(tmp_path / "sig.tst"), "-digest", digest,
                  "-CAfile", str(trust["dir"] / "root.pem"), "-untrusted", str(trust["dir"] / "issuing.pem"))
    assert ran.returncode == 0 and b"Verification: OK" in ran.stdout, ran.stdout + ran.stderr

    # Our report, from the hash alone and from the content.
    signature_b64 = base64.b64encode(result.content).decode()
    by_hash = verify_api(platform, json={"cms": signature_b64, "sha256": hashlib.sha256(document).hexdigest()}).json()
    assert by_hash["valid"] and by_hash["signatures"][0]["signing_time"]["timestamp_valid"]
    assert (by_hash["signatures"][0]["indication"], by_hash["signatures"][0]["level"]) == ("PASSED", "B-LT")
    by_content = verify_api(platform, json={"cms": signature_b64, "content": base64.b64encode(document + b"!").decode()}).json()
    assert by_content["valid"] is False and by_content["signatures"][0]["integrity"]["intact"] is False
    assert (by_content["signatures"][0]["indication"], by_content["signatures"][0]["sub_indication"]) == ("FAILED", "HASH_FAILURE")


async def test_the_tsa_answers_rfc3161_queries_that_openssl_verifies(platform, trust, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"anything at all " + uuid.uuid4().bytes)
    query = openssl("ts", "-query", "-data", str(data), "-sha256", "-cert")
    assert query.returncode == 0
    reply = requests.post(platform.gateway + "/v1/signing/tsa", data=query.stdout,
                          headers={"Content-Type": "application/timestamp-query"}, timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/timestamp-reply"
    (tmp_path / "reply.tsr").write_bytes(reply.content)
    ran = openssl("ts", "-verify", "-in", str(tmp_path / "reply.tsr"), "-data", str(data),
                  "-CAfile", str(trust["dir"] / "root.pem"), "-untrusted", str(trust["dir"] / "issuing.pem"))
    assert ran.returncode == 0 and b"Verification: OK" in ran.stdout, ran.stdout + ran.stderr
    text = openssl("ts", "-reply", "-in", str(tmp_path / "reply.tsr"), "-text").stdout
    assert b"Status: Granted." in text and b"Harbour ID Timestamp Authority" in text
    # The TSA certificate: its own, with the critical timeStamping EKU RFC 3161 demands.
    tsa_cert = cms.ContentInfo.load(openssl("ts", "-reply", "-in", str(tmp_path / "reply.tsr"), "-token_out").stdout)
    [cert] = [c.chosen for c in tsa_cert["content"]["certificates"] if c.chosen.subject.native["common_name"] == "Harbour ID Timestamp Authority"]
    eku = next(e for e in cert["tbs_certificate"]["extensions"] if e["extn_id"].native == "extended_key_usage")
    assert eku["critical"].native and eku["extn_value"].native == ["time_stamping"]



def tsa_reply_text(platform, query: bytes, folder: Path) -> str:
    """POST a query; the reply must be an RFC 3161 TimeStampResp (HTTP 200); openssl's reading of it."""
    reply = requests.post(platform.gateway + "/v1/signing/tsa", data=query, headers={"Content-Type": "application/timestamp-query"}, timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/timestamp-reply", reply.text[:300]
    path = folder / f"{uuid.uuid4().hex}.tsr"
    path.write_bytes(reply.content)
    ran = openssl("ts", "-reply", "-in", str(path), "-text")
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.decode()


def crafted_query(**changes) -> bytes:
    """A TimeStampReq built by hand (asn1crypto), for what openssl will not produce."""
    query = {"version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x01" * 32},
             "cert_req": True}
    return tsp.TimeStampReq({**query, **changes}).dump()


async def test_the_tsa_answers_refusals_as_rfc3161_rejections_with_their_failure_info(platform, tmp_path):
    """Every refusal is a TimeStampResp with status rejection (2) and the failInfo RFC 3161 §2.4.2 names — never a 500."""
    data = tmp_path / "data.bin"
    data.write_bytes(b"imprint me " + uuid.uuid4().bytes)
    md5 = openssl("ts", "-query", "-data", str(data), "-md5", "-no_nonce")
    policy = openssl("ts", "-query", "-data", str(data), "-sha256", "-tspolicy", "1.2.3.4")
    assert md5.returncode == 0 and policy.returncode == 0
    extension = {"extn_id": "1.2.3.4.5", "critical": False, "extn_value": b"\x05\x00"}
    cases = [
        (md5.stdout, "unrecognized or unsupported algorithm identifier"),  # badAlg
        (policy.stdout, "the requested TSA policy is not supported by the TSA"),  # unacceptedPolicy
        (crafted_query(message_imprint={"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x01" * 20}),
         "the data submitted has the wrong format"),  # badDataFormat: 20 bytes are no SHA-256
        (crafted_query(extensions=[extension]), "the requested extension is not supported by the TSA"),  # unacceptedExtension
        (crafted_query(version=2), "transaction not permitted or supported"),  # badRequest: a version we do not support
        (b"not a query", "the data submitted has the wrong format"),  # garbage: badDataFormat
        (b"", "the data submitted has the wrong format"),
    ]
    for query, failure in cases:
        text = tsa_reply_text(platform, query, tmp_path)
        assert "Status: Rejected." in text and f"Failure info: {failure}" in text and "TST info:\nNot included." in text, text
    # The TSA still grants a good query afterwards.
    good = openssl("ts", "-query", "-data", str(data), "-sha512", "-cert")
    assert "Status: Granted." in tsa_reply_text(platform, good.stdout, tmp_path)


async def test_a_suspended_identity_has_its_certificate_revoked_and_on_the_crl(platform, kiosk, metadata, trust, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path, "revoked-phone")
    rp = signing_rp(platform, "Harbour Revenue Office")
    token = await logged_in_token(metadata, rp, app, SCOPE)
    document = b"tax return 2026"
    request = await create(platform, token, json={"document_name": "return.txt", "sha256": hashlib.sha256(document).hexdigest()})
    await app.approve((await prompt_for(app, request["request_id"]))["approval_id"])
    done = await wait_for(platform, token, request["request_id"], "signed")
    signature = result_of(platform, token, request["request_id"]).content
    serial = int(done["certificate_serial"], 16)
    assert serial not in {e["user_certificate"].native for e in asn1_crl.CertificateList.load(crl_der(platform))["tbs_cert_list"]["revoked_certificates"]}

    suspended = admin(platform, "set-state", app.profile.account_id, "suspended", "--reason", "reported stolen phone")
    assert suspended.returncode == 0, suspended.stderr

    def revoked_on_crl():
        listed = asn1_crl.CertificateList.load(crl_der(platform))["tbs_cert_list"]["revoked_certificates"]
        return next((e for e in listed if e["user_certificate"].native == serial), None)

    entry = await eventually(revoked_on_crl, timeout_s=20)
    assert entry["crl_entry_extensions"][0]["extn_value"].native == "certificate_hold"
    # OpenSSL checks the CRL's signature by the issuing CA, which chains to our root.
    (tmp_path / "crl.der").write_bytes(crl_der(platform))
    ran = openssl("crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-CAfile", str(trust["dir"] / "issuing.pem"), "-noout")
    assert ran.returncode == 0 and b"verify OK" in ran.stderr, ran.stderr

    # OpenSSL's whole-path revocation check now refuses the signer's certificate.
    (tmp_path / "return.txt").write_bytes(document)
    (tmp_path / "return.p7s").write_bytes(signature)
    checked = signer_checked_against_crls(platform, trust, tmp_path / "return.p7s", tmp_path / "return.txt", tmp_path)
    assert checked.returncode != 0 and b"certificate revoked" in checked.stdout + checked.stderr, checked.stdout + checked.stderr

    report = verify_api(platform, json={"cms": base64.b64encode(signature).decode(), "sha256": hashlib.sha256(document).hexdigest()}).json()
    assert report["valid"] is False and report["signatures"][0]["revocation"]["status"] == "revoked"
    assert report["signatures"][0]["integrity"] == {"intact": True, "valid": True}  # intact, but revoked
    # ETSI: the signature timestamp proves the signature existed at its time; revoked later → PASSED on that proof,
    # revoked in the same second (or before) → FAILED/REVOKED.
    revoked = report["signatures"][0]
    later = datetime.fromisoformat(revoked["revocation"]["revoked_at"]) > datetime.fromisoformat(revoked["signing_time"]["timestamp"])
    assert (revoked["indication"], revoked["sub_indication"]) == (("PASSED", None) if later else ("FAILED", "REVOKED"))
    # A suspended identity cannot sign any more: signing's own identity check refuses it (403), and its relying
    # party's tokens are refused at the edge once the suspension's revocation event reaches the gateway (the
    # revocations topic, issue 14 item 3) — asynchronous, like the CRL above. Never accepted meanwhile.
    async def refused_at_the_edge():
        answer = requests.post(platform.gateway + "/v1/signing/requests", headers=bearer(token), timeout=10,
                               json={"document_name": "again.txt", "sha256": hashlib.sha256(b"again").hexdigest()})
        assert answer.status_code in (401, 403), answer.text
        if answer.status_code == 403:
            assert answer.json()["type"].endswith("/identity-not-active"), answer.text
            return None
        return [answer]  # in a list: a Response with a 4xx status is falsy

    [refused] = await eventually(refused_at_the_edge, timeout_s=20, interval_s=0.2)
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"], refused.text
    assert refused.json()["detail"] == "the citizen's account is not active"


async def test_basic_citizens_and_declined_requests_get_no_signature(platform, kiosk, metadata, tmp_path):
    basic = await basic_citizen(platform, tmp_path)
    rp = signing_rp(platform, "Harbour Licensing", agency_events=True)  # it reads its topic (below)
    token = await logged_in_token(metadata, rp, basic, SCOPE)
    body = {"document_name": "licence.txt", "sha256": hashlib.sha256(b"licence").hexdigest()}

    async def too_low():
        response = requests.post(platform.gateway + "/v1/signing/requests", headers=bearer(token), json=body, timeout=10)
        return [response] if response.status_code == 403 else None

    [refused] = await eventually(too_low, timeout_s=20)
    assert "plus" in refusal(refused, 403, "assurance-too-low")["detail"]

    # Anonymous: the basic citizen opens the link and is refused; the relying party sees why.
    anonymous = await create(platform, client_token(metadata, rp, "sign"), json=body)
    with pytest.raises(AppError) as opened:
        await basic.open_link(anonymous["app_link"])
    refused_with(opened.value, 403, "assurance-too-low")
    status = await wait_for(platform, client_token(metadata, rp, "sign"), anonymous["request_id"], "refused")
    assert status["error"] == "assurance-too-low"

    # A plus citizen who says no.
    plus = await enrolled_app(platform, kiosk, tmp_path, "deny-phone")
    token = await logged_in_token(metadata, rp, plus, SCOPE)
    declined = await create(platform, token, json=body)
    await plus.deny((await prompt_for(plus, declined["request_id"]))["approval_id"])
    assert (await wait_for(platform, token, declined["request_id"], "denied"))["error"] == "access_denied"
    refusal(result_of(platform, token, declined["request_id"]), 403, "access_denied")

    async def refused_events():
        return sorted(e.data["reason"] for e in await agency_events(platform, rp["client_id"]) if e.type == "signature.refused")

    async def both():
        return len(await refused_events()) >= 2

    await eventually(both, timeout_s=20)
    assert await refused_events() == ["assurance-too-low", "denied"]


async def test_bad_input_is_a_clear_4xx_and_changes_nothing(platform, kiosk, metadata, tmp_path):
    rp = signing_rp(platform, "Harbour Input Checks")
    token = client_token(metadata, rp, "sign")
    await create(platform, token, json={"document_name": "warm-up.txt", "sha256": "ab" * 32})  # the client is known now

    def post(**kwargs) -> requests.Response:
        headers = {**bearer(token), **kwargs.pop("headers", {})}
        return requests.post(platform.gateway + "/v1/signing/requests", headers=headers, timeout=30, **kwargs)

    cases = [
        (post(json={"document_name": "x", "sha256": "not-hex"}), 422),
        (post(json={"document_name": "", "sha256": "ab" * 32}), 422),
        (post(data=b"%PDF-1.7 but not really", params={"document_name": "a.pdf"}, headers={"Content-Type": PDF}), 422),
        (post(data=b"hello", params={"document_name": "a.pdf"}, headers={"Content-Type": PDF}), 422),
        (post(data=application_pdf(), headers={"Content-Type": PDF}), 422),  # no document name
        (post(data=b"x" * (6 * 1024 * 1024 + 1), params={"document_name": "big.pdf"}, headers={"Content-Type": PDF}), 413),
        (post(data=b"plain", headers={"Content-Type": "text/plain"}), 415),
        (requests.post(platform.gateway + "/v1/signing/requests", json={"document_name": "x", "sha256": "ab" * 32}, timeout=10), 401),
        (verify_api(platform, json={"cms": base64.b64encode(b"garbage" * 10).decode(), "sha256": "ab" * 32}), 422),
        (verify_api(platform, data=b"%PDF-1.4 nothing", headers={"Content-Type": PDF}), 422),
        (verify_api(platform, json={"cms": "AAAAAAAAAAAAAAAAAAAA", "sha256": "ab" * 32, "content": "AA=="}), 422),
    ]
    for response, expected in cases:
        assert response.status_code == expected, (expected, response.status_code, response.text[:300])
        assert response.headers["Content-Type"].startswith("application/problem+json"), response.text[:300]
    # Multipart works too.
    multipart = post(files={"document": ("form.pdf", application_pdf("multipart"), PDF)}, data={"document_name": "form.pdf"})
    assert multipart.status_code == 201 and multipart.json()["kind"] == "pdf", multipart.text


def whitespace_bomb_pdf(whitespace_bytes: int = 4_000_000) -> bytes:
    """~50 KB of PDF that costs seconds of CPU to read: its catalog, page tree, page, form and fields each sit in
    their own FlateDecode object stream, padded inside the dictionary with ~4 MB of whitespace (just under
    pyHanko's decode limit), which the lexer walks a byte at a time."""
    pad = b" " * whitespace_bytes
    # Eight padded form fields besides: reading them costs several times the sandbox's CPU limit even on an
    # idle machine (the four structural objects alone took 1.4 s of CPU here, under the 2 s limit).
    fields = range(6, 14)
    objects = {2: b"<</Type/Catalog" + pad + b"/Pages 3 0 R/AcroForm 5 0 R>>",
               3: b"<</Type/Pages" + pad + b"/Kids[4 0 R]/Count 1>>",
               4: b"<</Type/Page" + pad + b"/Parent 3 0 R/MediaBox[0 0 612 792]>>",
               5: b"<</Fields[" + b" ".join(b"%d 0 R" % n for n in fields) + b"]" + pad + b">>",
               **{n: b"<</FT/Sig/T(f%d)" % n + pad + b">>" for n in fields}}
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    rows = {0: (0, 0, 65535)}
    for number, body in objects.items():
        head = b"%d 0\n" % number
        stream = zlib.compress(head + body, 9)
        container = number + 100
        rows[container] = (1, out.tell(), 0)
        out.write(b"%d 0 obj\n<</Type/ObjStm/N 1/First %d/Filter/FlateDecode/Length %d>>\nstream\n" % (container, len(head), len(stream))
                  + stream + b"\nendstream\nendobj\n")
        rows[number] = (2, container, 0)
    xref_at = out.tell()
    size = max(rows) + 2
    rows[size - 1] = (1, xref_at, 0)
    table = b"".join(bytes([kind]) + a.to_bytes(4, "big") + b.to_bytes(2, "big")
                     for kind, a, b in (rows.get(n, (0, 0, 0)) for n in range(size)))
    out.write(b"%d 0 obj\n<</Type/XRef/Size %d/W[1 4 2]/Root 2 0 R/Length %d>>\nstream\n" % (size - 1, size, len(table))
              + table + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_at)
    return out.getvalue()


def while_in_flight(gateway: str, costly) -> tuple[requests.Response, list[float]]:
    """Run `costly` (a request) and, until it answers, time cheap GET /v1/signing/ca requests one after another:
    the latency of every cheap request started while the costly one was in flight (at least 3 of them)."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(costly)
        latencies = []
        while not pending.done() or len(latencies) < 3:
            in_flight = not pending.done()
            started = time.monotonic()
            cheap = requests.get(gateway + "/v1/signing/ca", timeout=60)
            assert cheap.status_code == 200
            if in_flight:
                latencies.append(time.monotonic() - started)
            elif len(latencies) < 3:
                raise AssertionError(f"the costly request was answered before 3 cheap ones: {latencies}")
        return pending.result(), latencies


async def test_costly_pdfs_are_refused_while_signing_keeps_answering(platform, metadata):
    """A small PDF that costs seconds to parse (verify, and an upload to sign) is parsed in a worker with CPU,
    memory and wall-clock limits: 422, and signing answers other requests at once meanwhile."""
    bomb = whitespace_bomb_pdf()
    assert len(bomb) < 64_000
    rp = signing_rp(platform, "Harbour Costly PDFs")
    token = client_token(metadata, rp, "sign")
    await create(platform, token, json={"document_name": "warm-up.txt", "sha256": "ab" * 32})  # the client is known now

    def verify_bomb() -> requests.Response:
        return verify_api(platform, data=bomb, headers={"Content-Type": PDF})

    def upload_bomb() -> requests.Response:
        return requests.post(platform.gateway + "/v1/signing/requests", data=bomb, params={"document_name": "bomb.pdf"},
                             headers={**bearer(token), "Content-Type": PDF}, timeout=60)

    for costly, slug in ((verify_bomb, "unverifiable"), (upload_bomb, "invalid-pdf")):
        started = time.monotonic()
        answer, latencies = while_in_flight(platform.gateway, costly)
        elapsed = time.monotonic() - started
        # Meanwhile the cheap requests did not queue behind it; it was answered within the wall-clock limit (5 s) plus the trip.
        assert len(latencies) >= 3 and max(latencies) < 1.0, (slug, latencies)
        assert elapsed < 10, elapsed
        assert refusal(answer, 422, slug).get("limit") in ("cpu", "memory", "wall-clock"), answer.text[:300]
    # The killed workers were replaced: an ordinary PDF is still checked (no signature: unverifiable, quickly).
    started = time.monotonic()
    plain = verify_api(platform, data=application_pdf(), headers={"Content-Type": PDF})
    assert "no signature" in refusal(plain, 422, "unverifiable")["detail"] and time.monotonic() - started < 5


# Read in a process of its own: a PKCS#11 module reads SOFTHSM2_CONF once per process, and the in-process
# signing tests (tests/service/signing) open a token of their own in this one.
PRIVATE_KEYS = """
import json, os, pkcs11
from pkcs11 import Attribute, ObjectClass
token = pkcs11.lib(os.environ["HARBOUR_SIGNING_PKCS11_MODULE"]).get_token(token_label=os.environ["HARBOUR_SIGNING_TOKEN_LABEL"])
with token.open(user_pin=os.environ["HARBOUR_SIGNING_HSM_PIN"]) as session:
    keys = []
    for key in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
        try:
            key[Attribute.VALUE]
            value = "read"
        except pkcs11.exceptions.AttributeSensitive:
            value = "refused"
        keys.append({"sensitive": key[Attribute.SENSITIVE], "extractable": key[Attribute.EXTRACTABLE],
                     "never_extractable": key[Attribute.NEVER_EXTRACTABLE], "always_sensitive": key[Attribute.ALWAYS_SENSITIVE],
                     "value": value})
print(json.dumps(keys))
"""


def test_private_keys_never_leave_the_token(platform):
    """Every private key in the token (CA, TSA, citizens) is sensitive and non-extractable; reading one is refused."""
    ran = subprocess.run([sys.executable, "-c", PRIVATE_KEYS], env=platform.env(), capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    keys = json.loads(ran.stdout)
    assert len(keys) >= 3  # root, issuing CA, TSA (and the citizens' keys of the tests above)
    for key in keys:
        assert key == {"sensitive": True, "extractable": False, "never_extractable": True, "always_sensitive": True,
                       "value": "refused"}, key

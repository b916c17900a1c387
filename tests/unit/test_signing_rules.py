"""signing's pure rules: request models, PDF checks, TSA rejections, X.509 helpers, unverifiable input."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import keys, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fpdf import FPDF
from pydantic import ValidationError

from services.signing.authority import REVOCATION_REASONS
from services.signing.signing_requests import DocumentQuery, SignHashBody
from services.signing.uploads import InvalidPdf, check_pdf
from services.signing.tsa import POLICY_OID, TimeStampAuthority, TimeStampResp
from services.signing.verify import Unverifiable, VerifyCmsBody, verify_cms, verify_pdf
from services.signing.x509 import key_identifier, random_serial


def a_pdf(pages: int = 1) -> bytes:
    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
    return bytes(pdf.output())


def software_tsa_certificate() -> asn1_x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit TSA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def query(algorithm: str = "sha256", digest_length: int = 32, policy: str | None = None) -> tsp.TimeStampReq:
    fields = {"version": 1, "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": b"\x01" * digest_length},
              "cert_req": True}
    if policy:
        fields["req_policy"] = policy
    return tsp.TimeStampReq(fields)


def test_a_hash_request_needs_a_name_and_a_sha256():
    assert SignHashBody(document_name="deed.txt", sha256="AB" * 32).sha256 == "AB" * 32
    for bad in ({"document_name": "x", "sha256": "ab" * 31}, {"document_name": "x", "sha256": "zz" * 32},
                {"document_name": "", "sha256": "ab" * 32}, {"document_name": "two\nlines", "sha256": "ab" * 32},
                {"document_name": "x", "sha256": "ab" * 32, "extra": 1}):
        with pytest.raises(ValidationError):
            SignHashBody.model_validate(bad)
    with pytest.raises(ValidationError):
        DocumentQuery.model_validate({"document_name": "a.pdf", "unknown": "1"})


def test_only_real_unencrypted_pdfs_with_pages_are_signable():
    assert check_pdf(a_pdf(pages=2)) == 2
    for garbage in (b"hello", b"%PDF-1.7\n garbage", a_pdf()[:200]):
        with pytest.raises(InvalidPdf):
            check_pdf(garbage)


async def test_the_tsa_rejects_what_it_cannot_stamp_without_touching_the_hsm():
    authority = TimeStampAuthority(None, "unused", software_tsa_certificate(), [])  # type: ignore[arg-type]
    for request, failure in ((query("sha1", 20), "bad_alg"), (query(digest_length=31), "bad_data_format"),
                             (query(policy="1.2.3.4"), "unaccepted_policy")):
        # Encoded and read back, as the HTTP answer is (asn1crypto's own TimeStampResp could not encode a rejection).
        reply = TimeStampResp.load((await authority.respond(request)).dump())
        assert reply["status"]["status"].native == "rejection"
        assert reply["status"]["fail_info"].native == {failure}
        assert reply["time_stamp_token"].native is None
    assert POLICY_OID.startswith("2.25.")


def test_serials_and_key_identifiers():
    serials = {random_serial() for _ in range(100)}
    assert len(serials) == 100 and all(0 < s < 2**127 for s in serials)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    info = keys.PublicKeyInfo.load(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert key_identifier(info) == x509.SubjectKeyIdentifier.from_public_key(key).digest


def test_suspension_holds_and_revocation_or_closure_ends_the_certificate():
    assert REVOCATION_REASONS == {"suspended": "certificate_hold", "revoked": "cessation_of_operation",
                                  "closed": "cessation_of_operation"}


async def test_unverifiable_input_is_refused_before_any_validation():
    never = lambda: pytest.fail("no validation context for garbage")  # noqa: E731
    with pytest.raises(ValidationError):
        VerifyCmsBody(cms="A" * 20, sha256="ab" * 32, content="AA==")
    for body in (VerifyCmsBody(cms="!" * 20, sha256="ab" * 32),
                 VerifyCmsBody(cms=base64.b64encode(b"not a cms object" * 3).decode(), sha256=hashlib.sha256(b"x").hexdigest())):
        with pytest.raises(Unverifiable):
            await verify_cms(body, never, b"")
    with pytest.raises(Unverifiable):
        await verify_pdf(a_pdf(), never, b"")  # a PDF without a signature

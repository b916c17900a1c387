"""The verification report in ETSI EN 319 102-1's vocabulary: indication, sub-indication and the level reached."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from libs.clock import FrozenClock
from tests.support.auth_stand_in import state_changed

from .conftest import CONTRACT, CONTRACT_SHA256
from .test_sign import approved


@pytest.fixture
def now_clock() -> FrozenClock:
    """Ten minutes ago: the service's clock may then move on (a revocation after signing) and still issue CRLs that
    pyHanko, validating at the real time, does not find too recent."""
    return FrozenClock(datetime.now(UTC) - timedelta(minutes=10))


async def verify_cms(signing, signature: bytes, **what):
    answer = await signing.http.post("/v1/signing/verify", json={"cms": base64.b64encode(signature).decode(), **what})
    assert answer.status == 200, await answer.text()
    return await answer.json()


async def signed_cms(signing):
    rp, citizen, request_id = await approved(signing)
    return citizen, await (await signing.result(rp, request_id)).read()


def tampered(pdf: bytes) -> bytes:
    """One digit of the original revision's creation date changed: same length, inside the signed byte range."""
    position = pdf.index(b"/CreationDate (D:") + len(b"/CreationDate (D:")
    return pdf[:position] + (b"1" if pdf[position:position + 1] != b"1" else b"2") + pdf[position + 1:]


async def test_a_good_timestamped_signature_passes_at_b_lt(signing):
    _, signature = await signed_cms(signing)

    report = await verify_cms(signing, signature, content=base64.b64encode(CONTRACT).decode())

    [sig] = report["signatures"]
    # A signature timestamp and the validation data in SignedData (CRLs, OCSP answers); no archive timestamp.
    assert (sig["indication"], sig["sub_indication"], sig["level"]) == ("PASSED", None, "B-LT")
    assert report["valid"] and sig["valid"] and sig["revocation"]["status"] == "good"  # the old fields stay
    [stamp] = sig["timestamps"]
    assert stamp["type"] == "signature_timestamp" and stamp["valid"] is True and stamp["time"] == sig["signing_time"]["timestamp"]


async def test_a_signed_pdf_passes_at_b_lta_with_its_document_timestamp_listed(signing):
    rp, _, request_id = await approved(signing, pdf=True)
    signed = await (await signing.result(rp, request_id)).read()

    report = await (await signing.http.post("/v1/signing/verify", data=signed, headers={"Content-Type": "application/pdf"})).json()

    sig, doc_ts = report["signatures"]
    # The DSS holds the signer's revocation data and the document timestamp covers it (test_long_term: what each lacks).
    assert (sig["indication"], sig["sub_indication"], sig["level"]) == ("PASSED", None, "B-LTA")
    assert [t["type"] for t in sig["timestamps"]] == ["signature_timestamp", "document_timestamp"]
    assert all(t["valid"] for t in sig["timestamps"])
    assert (doc_ts["type"], doc_ts["indication"]) == ("document_timestamp", "PASSED")
    assert sig["sole_control"]["verified"]  # the sole-control section is kept


async def test_a_tampered_pdf_fails_with_hash_failure(signing):
    rp, _, request_id = await approved(signing, pdf=True)
    signed = await (await signing.result(rp, request_id)).read()

    report = await (await signing.http.post("/v1/signing/verify", data=tampered(signed),
                                            headers={"Content-Type": "application/pdf"})).json()

    assert report["valid"] is False
    assert [(s["indication"], s["sub_indication"]) for s in report["signatures"]] == [("FAILED", "HASH_FAILURE")] * 2


async def test_a_digest_that_differs_is_a_hash_failure(signing):
    _, signature = await signed_cms(signing)

    report = await verify_cms(signing, signature, content=base64.b64encode(CONTRACT + b"!").decode())

    assert (report["signatures"][0]["indication"], report["signatures"][0]["sub_indication"]) == ("FAILED", "HASH_FAILURE")


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def another_ca_signer() -> signers.SimpleSigner:
    """A citizen's certificate issued by some other CA (its certificate carried in the CMS), not by ours."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Some Other CA", ca_key, "Some Other CA", ca_key, ca=True)
    cert = _certificate("Someone Else", key, "Some Other CA", ca_key, ca=False)
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return signers.SimpleSigner(signing_cert=_asn1(cert), signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
                                cert_registry=SimpleCertificateStore.from_certs([_asn1(ca)]))


async def test_a_signature_by_another_cas_certificate_has_no_chain(signing):
    signature = (await another_ca_signer().async_sign(bytes.fromhex(CONTRACT_SHA256), "sha256")).dump()

    report = await verify_cms(signing, signature, sha256=CONTRACT_SHA256)

    [sig] = report["signatures"]
    assert (sig["indication"], sig["sub_indication"]) == ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")
    assert sig["level"] == "B-B" and sig["timestamps"] == []  # signed attributes with the signing certificate, no timestamp
    assert sig["integrity"] == {"intact": True, "valid": True} and report["valid"] is False


async def test_a_certificate_revoked_no_later_than_the_timestamp_fails_revoked(signing):
    citizen, signature = await signed_cms(signing)
    # Revoked in the very second the timestamp proves: nothing shows the signature existed before.
    await signing.learn(state_changed(citizen.account_id, was="active", to="suspended"))

    report = await verify_cms(signing, signature, sha256=CONTRACT_SHA256)

    [sig] = report["signatures"]
    assert sig["revocation"]["status"] == "revoked"
    assert (sig["indication"], sig["sub_indication"]) == ("FAILED", "REVOKED")


async def test_a_certificate_revoked_after_the_timestamp_still_passes_on_that_proof(signing):
    citizen, signature = await signed_cms(signing)
    signing.clock.advance(minutes=5)
    await signing.learn(state_changed(citizen.account_id, was="active", to="suspended"))

    report = await verify_cms(signing, signature, sha256=CONTRACT_SHA256)

    [sig] = report["signatures"]
    assert sig["revocation"]["status"] == "revoked" and sig["valid"] is False  # `valid` stays today's strict check
    assert datetime.fromisoformat(sig["revocation"]["revoked_at"]) > datetime.fromisoformat(sig["signing_time"]["timestamp"])
    assert (sig["indication"], sig["sub_indication"], sig["level"]) == ("PASSED", None, "B-LT")

"""X.509 certificates and CRLs built with asn1crypto and signed by a key in the HSM.

cryptography's builders want a private key object; ours never leaves the
token, so the to-be-signed structures are assembled here, their DER signed
by the HSM (ECDSA P-256 with SHA-256), and the signature attached.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import datetime

from asn1crypto import crl, keys, x509
from asn1crypto import pem as asn1_pem

from .hsm import HSM

SIGNATURE_ALGORITHM = {"algorithm": "sha256_ecdsa"}
ORGANISATION = "Harbour ID"
COUNTRY = "HK"


def name(common_name: str, *, pseudonym: str | None = None) -> x509.Name:
    fields = {"country_name": COUNTRY, "organization_name": ORGANISATION, "common_name": common_name}
    if pseudonym is not None:
        fields["pseudonym"] = pseudonym
    return x509.Name.build(fields)


def random_serial() -> int:
    # RFC 5280 §4.1.2.2: positive, at most 20 octets; 127 random bits.
    return int.from_bytes(os.urandom(16), "big") >> 1 or 1


def key_identifier(public_key: keys.PublicKeyInfo) -> bytes:
    # RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING.
    return hashlib.sha1(public_key["public_key"].contents[1:]).digest()


def _ext(extn_id: str, value, critical: bool = False) -> dict:
    return {"extn_id": extn_id, "critical": critical, "extn_value": value}


def _crl_distribution(url: str) -> dict:
    uri = x509.GeneralName(name="uniform_resource_identifier", value=url)
    return _ext("crl_distribution_points", [{"distribution_point": {"full_name": [uri]}}])


def ca_extensions(path_length: int | None, crl_url: str | None = None) -> list[dict]:
    """A CA's extensions; `crl_url` is where its issuer's CRL is (none for the self-signed root)."""
    constraints = {"ca": True} if path_length is None else {"ca": True, "path_len_constraint": path_length}
    extensions = [_ext("basic_constraints", constraints, True), _ext("key_usage", {"key_cert_sign", "crl_sign"}, True)]
    return extensions + ([_crl_distribution(crl_url)] if crl_url else [])


def citizen_extensions(crl_url: str) -> list[dict]:
    # digitalSignature + nonRepudiation (contentCommitment): document signing; no EKU, so
    # S/MIME-minded verifiers (openssl cms) accept the certificate for signed data.
    return [
        _ext("basic_constraints", {"ca": False}, True),
        _ext("key_usage", {"digital_signature", "non_repudiation"}, True),
        _crl_distribution(crl_url),
    ]


def tsa_extensions(crl_url: str) -> list[dict]:
    # RFC 3161 §2.3: exactly one EKU, id-kp-timeStamping, and it must be critical.
    return [
        _ext("basic_constraints", {"ca": False}, True),
        _ext("key_usage", {"digital_signature", "non_repudiation"}, True),
        _ext("extended_key_usage", ["time_stamping"], True),
        _crl_distribution(crl_url),
    ]


async def issue_certificate(
    hsm: HSM, *, issuer_label: str, issuer: x509.Certificate | None, subject: x509.Name, public_key: keys.PublicKeyInfo,
    not_before: datetime, not_after: datetime, extensions: Iterable[dict], serial: int | None = None,
) -> x509.Certificate:
    """A certificate for `public_key`, signed by the HSM key `issuer_label` (self-signed when `issuer` is None)."""
    issuer_name = subject if issuer is None else issuer.subject
    issuer_key = public_key if issuer is None else issuer.public_key
    all_extensions = [
        _ext("key_identifier", key_identifier(public_key)),
        _ext("authority_key_identifier", {"key_identifier": key_identifier(issuer_key)}),
        *extensions,
    ]
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial or random_serial(),
        "signature": SIGNATURE_ALGORITHM,
        "issuer": issuer_name,
        "validity": {"not_before": x509.Time({"utc_time": not_before}), "not_after": x509.Time({"utc_time": not_after})},
        "subject": subject,
        "subject_public_key_info": public_key,
        "extensions": all_extensions,
    })
    signature = await hsm.sign(issuer_label, tbs.dump())
    return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": SIGNATURE_ALGORITHM, "signature_value": signature})


async def build_crl(
    hsm: HSM, *, issuer_label: str, issuer: x509.Certificate, number: int, this_update: datetime, next_update: datetime,
    revoked: Iterable[tuple[int, datetime, str]],
) -> crl.CertificateList:
    """A v2 CRL of `issuer`: (serial, revocation time, RFC 5280 reason name) per revoked certificate."""
    entries = [
        {"user_certificate": serial, "revocation_date": x509.Time({"utc_time": when}),
         "crl_entry_extensions": [{"extn_id": "crl_reason", "critical": False, "extn_value": reason}]}
        for serial, when, reason in revoked
    ]
    fields = {
        "version": "v2",
        "signature": SIGNATURE_ALGORITHM,
        "issuer": issuer.subject,
        "this_update": x509.Time({"utc_time": this_update}),
        "next_update": x509.Time({"utc_time": next_update}),
        "crl_extensions": [
            {"extn_id": "authority_key_identifier", "critical": False, "extn_value": {"key_identifier": key_identifier(issuer.public_key)}},
            {"extn_id": "crl_number", "critical": False, "extn_value": number},
        ],
    }
    if entries:  # an empty revokedCertificates must be absent, not empty (RFC 5280 §5.1.2.6)
        fields["revoked_certificates"] = entries
    tbs = crl.TbsCertList(fields)
    signature = await hsm.sign(issuer_label, tbs.dump())
    return crl.CertificateList({"tbs_cert_list": tbs, "signature_algorithm": SIGNATURE_ALGORITHM, "signature": signature})


def pem(cert: x509.Certificate) -> str:
    return asn1_pem.armor("CERTIFICATE", cert.dump()).decode()


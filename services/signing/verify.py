"""Verification reports with pyHanko's validators, trusting our root CA only (run in the sandbox's workers).

A report says, per signature: who signed (certificate subject, serial),
whether the chain reaches our root (trusted), integrity (the signed digest
matches the content, and the signature over the attributes verifies), when
(the timestamp from our TSA, and the time the signer claims), and revocation
status read from our own CRL. Nothing is fetched from the network.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
from datetime import datetime
from typing import Any

from asn1crypto import cms, x509
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography.hazmat.primitives import hashes
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import extract_signer_info
from pyhanko.sign.validation import DocumentSecurityStore, async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.generic_cms import cms_basic_validation, collect_timing_info
from pyhanko.sign.validation.status import SignatureStatus, StandardCMSSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

# What crosses the sandbox's boundary lives in reports.py (no pyHanko there); named here too, as before.
from . import etsi
from .reports import Trust, Unverifiable, VerificationReport, VerifyCmsBody, counted  # noqa: F401

# CAdES attributes by OID (asn1crypto names few of them): what each baseline level adds to a signature.
SIGNING_CERTIFICATE = {"1.2.840.113549.1.9.16.2.12", "1.2.840.113549.1.9.16.2.47"}  # v1, v2
SIGNATURE_TIMESTAMP = "1.2.840.113549.1.9.16.2.14"
REVOCATION_VALUES = "1.2.840.113549.1.9.16.2.24"
ARCHIVE_TIMESTAMP = {"0.4.0.1733.2.4", "1.2.840.113549.1.9.16.2.27", "1.2.840.113549.1.9.16.2.48"}  # v3, v1, v2


def pdf_report(pdf: bytes, trust: Trust) -> dict[str, Any]:
    """Sandbox job (services/signing/sandbox.py): the report on a signed PDF."""
    return asyncio.run(verify_pdf(pdf, trust.contexts(), trust.crls[0]))


def cms_report(body: "VerifyCmsBody", trust: Trust) -> dict[str, Any]:
    """Sandbox job: the report on a detached CMS signature."""
    return asyncio.run(verify_cms(body, trust.contexts(), trust.crls[0]))


def validation_context(root: x509.Certificate, intermediates: list[x509.Certificate], crls: list[bytes]) -> ValidationContext:
    # Hard-fail: our two CRLs (the issuing CA's, and the root's covering the issuing CA) answer for
    # every certificate below the root, so a certificate without an answer is not accepted.
    return ValidationContext(trust_roots=[root], other_certs=intermediates, crls=crls,
                             allow_fetching=False, revocation_mode="hard-fail")


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Unverifiable(f"{what} is not valid base64") from None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _signer(cert: x509.Certificate) -> dict[str, Any]:
    return {"subject": cert.subject.human_friendly, "serial": format(cert.serial_number, "x"),
            "issuer": cert.issuer.human_friendly, "not_after": _iso(cert.not_valid_after)}


def _signature_id(signer_info: cms.SignerInfo) -> str:
    return hashlib.sha256(signer_info["signature"].native).hexdigest()


def _revocation(cert: x509.Certificate, crl: asn1_crl.CertificateList, status: SignatureStatus) -> dict[str, Any]:
    if cert.issuer != crl["tbs_cert_list"]["issuer"]:
        return {"status": "unknown", "source": "not issued by our issuing CA"}
    for entry in crl["tbs_cert_list"]["revoked_certificates"]:
        if entry["user_certificate"].native == cert.serial_number:
            reason = next((e["extn_value"].native for e in entry["crl_entry_extensions"] if e["extn_id"].native == "crl_reason"), None)
            return {"status": "revoked", "revoked_at": _iso(entry["revocation_date"].native), "reason": reason, "source": "crl"}
    return {"status": "revoked" if status.revoked else "good", "source": "crl",
            "crl_this_update": _iso(crl["tbs_cert_list"]["this_update"].native)}


def _chain(status: SignatureStatus) -> dict[str, Any]:
    path = [c.subject.human_friendly for c in status.validation_path.iter_certs(include_root=True)] if status.validation_path else []
    return {"trusted": status.trusted, "path": path, "problem": str(status.trust_problem_indic) if status.trust_problem_indic else None}


def _timestamp(status: StandardCMSSignatureStatus) -> dict[str, Any]:
    ts = status.timestamp_validity
    return {
        "claimed": _iso(status.signer_reported_dt),
        "timestamp": _iso(ts.timestamp) if ts else None,
        "timestamp_valid": (ts.intact and ts.valid and ts.trusted) if ts else None,
        "tsa": ts.signing_cert.subject.human_friendly if ts else None,
    }


def _attribute_oids(attrs: Any) -> set[str]:
    return {a["type"].dotted for a in attrs} if attrs.native is not None else set()


def _level(signer_info: cms.SignerInfo, *, revocation_data: bool = False, archive_timestamp: bool = False) -> str | None:
    """The baseline level the signature's own attributes (and, for a PDF, its DSS and document timestamps) reach."""
    signed, unsigned = _attribute_oids(signer_info["signed_attrs"]), _attribute_oids(signer_info["unsigned_attrs"])
    return etsi.level(signed_attributes=bool(signed), signing_certificate=bool(signed & SIGNING_CERTIFICATE),
                      signature_timestamp=SIGNATURE_TIMESTAMP in unsigned,
                      revocation_data=revocation_data or REVOCATION_VALUES in unsigned,
                      archive_timestamp=archive_timestamp or bool(unsigned & ARCHIVE_TIMESTAMP))


Answers = tuple[list[asn1_ocsp.OCSPResponse], list[asn1_crl.CertificateList]]


def _answers_in_cms(signed_data: cms.SignedData) -> Answers:
    """CAdES B-LT's revocation data in SignedData.crls: CRLs, and OCSP responses as RFC 5940 id-ri-ocsp-response."""
    ocsps, crls = [], []
    for choice in signed_data["crls"] or []:
        if choice.name == "crl":
            crls.append(choice.chosen)
        elif choice.chosen["other_rev_info_format"].native == "ocsp_response":
            ocsps.append(choice.chosen["other_rev_info"])
    return ocsps, crls


def _answers_in_dss(handler) -> Answers:
    """The OCSP responses and CRLs of a PDF's DSS (PAdES B-LT) as a revision (`handler`) has it; none when it has none."""
    try:
        dss = DocumentSecurityStore.read_dss(handler)
        return ([asn1_ocsp.OCSPResponse.load(ref.get_object().data) for ref in dss.ocsps],
                [asn1_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls])
    except Exception:  # no DSS, or a malformed one: it embeds nothing usable
        return [], []


def _answers_cover(cert: x509.Certificate, answers: Answers) -> bool:
    """Whether `answers` hold revocation data about `cert`: an OCSP response naming it (serial and issuer name hash),
    or a CRL of its issuer. Only then does a signature reach B-LT (not merely because some DSS exists)."""
    ocsps, crls = answers
    for response in ocsps:
        try:
            singles = response["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
            for single in singles:
                cert_id = single["cert_id"]
                algorithm = cert_id["hash_algorithm"]["algorithm"].native
                if cert_id["serial_number"].native == cert.serial_number and \
                        hashlib.new(algorithm, cert.issuer.dump()).digest() == cert_id["issuer_name_hash"].native:
                    return True
        except Exception:  # a response without a body, an unknown hash: about nothing we can match
            continue
    return any(crl["tbs_cert_list"]["issuer"] == cert.issuer for crl in crls)


def _signature_timestamps(timing: dict[str, Any]) -> list[dict[str, Any]]:
    if timing.get("timestamp") is None:
        return []
    return [{"type": "signature_timestamp", "time": timing["timestamp"], "valid": timing["timestamp_valid"], "tsa": timing["tsa"]}]


def _signature_report(status: StandardCMSSignatureStatus, crl: asn1_crl.CertificateList) -> dict[str, Any]:
    revocation = _revocation(status.signing_cert, crl, status)
    timing = _timestamp(status)
    report = {
        "type": "signature",
        "signer": _signer(status.signing_cert),
        "chain": _chain(status),
        "integrity": {"intact": status.intact, "valid": status.valid},
        "signing_time": timing,
        "revocation": revocation,
        "timestamps": _signature_timestamps(timing),
    }
    report["valid"] = bool(status.intact and status.valid and status.trusted and revocation["status"] != "revoked"
                           and timing["timestamp_valid"] is not False)
    return report


async def verify_cms(body: VerifyCmsBody, vc_factory, crl_der: bytes) -> dict[str, Any]:
    der = _b64(body.cms, "cms")
    content = _b64(body.content, "content") if body.content is not None else None
    try:
        report = await _cms_report(der, body.sha256, content, vc_factory, crl_der)
    except Unverifiable:
        raise
    except Exception as exc:  # asn1crypto and the validators raise many types on garbage; all mean the same here
        raise Unverifiable(f"the CMS signature cannot be parsed or validated ({type(exc).__name__})") from None
    return {"kind": "cms", "valid": report["valid"], "signatures": [report]}


async def _cms_report(der: bytes, sha256: str | None, content: bytes | None, vc_factory, crl_der: bytes) -> dict[str, Any]:
    info = cms.ContentInfo.load(der)
    if info["content_type"].native != "signed_data":
        raise Unverifiable("the CMS object is not SignedData")
    signed_data: cms.SignedData = info["content"]
    signer_info = extract_signer_info(signed_data)
    algorithm = signer_info["digest_algorithm"]["algorithm"].native
    if signed_data["encap_content_info"]["content"].native is not None:
        raise Unverifiable("this is not a detached signature")
    if content is not None:
        h = hashes.Hash(get_pyca_cryptography_hash(algorithm))
        h.update(content)
        digest = h.finalize()
    elif algorithm == "sha256":
        digest = bytes.fromhex(sha256 or "")
    else:
        raise Unverifiable(f"the signature uses {algorithm}: send the content, not a SHA-256")
    vc = vc_factory()
    kwargs = await collect_timing_info(signer_info, ts_validation_context=vc, raw_digest=lambda _alg: digest)
    kwargs = await cms_basic_validation(signed_data, raw_digest=digest, validation_context=vc, status_kwargs=kwargs,
                                        key_usage_settings=StandardCMSSignatureStatus.default_usage_constraints(None))
    status = StandardCMSSignatureStatus(**kwargs)
    report = _signature_report(status, asn1_crl.CertificateList.load(crl_der))
    report.update(etsi.conclusion(report),
                  level=_level(signer_info, revocation_data=_answers_cover(status.signing_cert, _answers_in_cms(signed_data))))
    # What the service looks its sole-control evidence up by (services/signing/evidence.py), and the hash it covers.
    return {**report, "signature_id": _signature_id(signer_info), "signed_sha256": digest.hex() if algorithm == "sha256" else None}


def _archived(reader: PdfFileReader, later: list, cert: x509.Certificate) -> bool:
    """PAdES B-LTA: a later document timestamp whose revision already held the DSS's data about `cert` (the timestamp
    covers the validation data, not merely follows the signature)."""
    return any(_answers_cover(cert, _answers_in_dss(reader.get_historical_resolver(s.signed_revision)))
               for s in later if s.sig_object_type == "/DocTimeStamp")


async def verify_pdf(pdf: bytes, vc_factory, crl_der: bytes) -> dict[str, Any]:
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = list(reader.embedded_signatures)
    except Exception as exc:  # pyHanko's reader raises many types on a malformed file
        raise Unverifiable(f"the PDF cannot be read: {exc}") from None
    if not embedded:
        raise Unverifiable("the PDF carries no signature")
    crl = asn1_crl.CertificateList.load(crl_der)
    dss_now = _answers_in_dss(reader)
    reports = []
    for index, sig in enumerate(embedded):
        try:
            if sig.sig_object_type == "/DocTimeStamp":
                ts = await async_validate_pdf_timestamp(sig, validation_context=vc_factory())
                report = {
                    "type": "document_timestamp", "field": sig.field_name,
                    "signer": _signer(ts.signing_cert), "chain": _chain(ts),
                    "integrity": {"intact": ts.intact, "valid": ts.valid},
                    "signing_time": {"timestamp": _iso(ts.timestamp)},
                    "coverage": ts.coverage.name.lower() if ts.coverage else None,
                    "revocation": _revocation(ts.signing_cert, crl, ts),
                }
                report["valid"] = bool(ts.intact and ts.valid and ts.trusted and report["revocation"]["status"] != "revoked")
                report.update(etsi.conclusion({**report, "signing_time": {}}))
            else:
                status = await async_validate_pdf_signature(sig, signer_validation_context=vc_factory(), ts_validation_context=vc_factory())
                report = {"field": sig.field_name, **_signature_report(status, crl), "signature_id": _signature_id(sig.signer_info),
                          "coverage": status.coverage.name.lower() if status.coverage else None,
                          "modification_level": status.modification_level.name.lower() if status.modification_level else None}
                report["valid"] = bool(report["valid"] and status.bottom_line)
                report.update(etsi.conclusion(report, allowed_changes=bool(status.seed_value_ok and (status.docmdp_ok or status.modification_level is None))),
                              level=_level(sig.signer_info, revocation_data=_answers_cover(status.signing_cert, dss_now),
                                           archive_timestamp=_archived(reader, embedded[index + 1:], status.signing_cert)))
        except Exception as exc:  # a broken signature dictionary: report it as invalid, never crash
            report = {"type": "unreadable", "field": sig.field_name, "valid": False, "error": type(exc).__name__}
            report.update(etsi.conclusion(report))
        reports.append(report)
    for index, report in enumerate(reports):  # each signature also lists the document timestamps over it
        if report.get("type") == "signature":
            report["timestamps"] += [{"type": "document_timestamp", "time": r["signing_time"]["timestamp"],
                                      "valid": r["indication"] == etsi.PASSED, "tsa": r["signer"]["subject"]}
                                     for r in reports[index + 1:] if r.get("type") == "document_timestamp"]
    valid = all(r["valid"] for r in reports)
    return {"kind": "pdf", "valid": valid, "signatures": reports}


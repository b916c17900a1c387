"""A relying party's side of signing, and the files independent verifiers need to trust only our root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests
from asn1crypto import pem, x509
from fpdf import FPDF
from pyhanko_certvalidator import ValidationContext

from .calls import bearer
from .citizens import pending_prompt
from .oidc import register
from .polling import eventually

PDF = "application/pdf"


def signing_rp(platform, name: str, **metadata) -> dict:
    return register(platform, client_name=name, scope="openid sign", **metadata)


def application_pdf(text: str = "Application for a harbour berth") -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text=text)
    return bytes(pdf.output())


async def create(platform, token: str, **kwargs) -> dict:
    """POST a signing request, retrying while signing has not yet heard of the client or citizen (409 + Retry-After)."""
    headers = {**bearer(token), **kwargs.pop("headers", {})}

    async def attempt():
        response = requests.post(platform.gateway + "/v1/signing/requests", headers=headers, timeout=30, **kwargs)
        assert response.status_code in (201, 409), response.text
        return response.json() if response.status_code == 201 else None

    return await eventually(attempt, timeout_s=20)


async def prompt_for(app, request_id: str) -> dict:
    """The citizen's prompt for a signing request, once it reaches the phone."""
    return await pending_prompt(app, f"sign-{request_id}")


async def wait_for(platform, token: str, request_id: str, wanted: str) -> dict:
    def check():
        status = requests.get(f"{platform.gateway}/v1/signing/requests/{request_id}", headers=bearer(token), timeout=10).json()
        return status if status["status"] == wanted else None

    return await eventually(check, timeout_s=30)


def result_of(platform, token: str, request_id: str) -> requests.Response:
    return requests.get(f"{platform.gateway}/v1/signing/requests/{request_id}/result", headers=bearer(token), timeout=30)


def chain(platform) -> list[x509.Certificate]:
    """GET /v1/signing/ca: the issuing CA, then the root."""
    response = requests.get(platform.gateway + "/v1/signing/ca", timeout=10)
    assert response.status_code == 200
    return [x509.Certificate.load(der) for _, _, der in pem.unarmor(response.content, multiple=True)]


def crl_der(platform, path: str = "/v1/signing/crl") -> bytes:
    response = requests.get(platform.gateway + path, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pkix-crl"
    return response.content


def both_crls(platform) -> list[bytes]:
    """The issuing CA's CRL (citizens, TSA) and the root's (the issuing CA)."""
    return [crl_der(platform), crl_der(platform, "/v1/signing/crl/root")]


def trust_files(platform, folder: Path) -> dict:
    """Files for the verifiers: root.pem alone is trusted; the issuing CA is only an untrusted intermediate."""
    issuing, root = chain(platform)
    assert root.self_signed == "maybe" and issuing.issuer == root.subject
    (folder / "root.pem").write_bytes(pem.armor("CERTIFICATE", root.dump()))
    (folder / "issuing.pem").write_bytes(pem.armor("CERTIFICATE", issuing.dump()))
    nss = folder / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "harbour-root", "-t", "C,C,C", "-a", "-i", str(folder / "root.pem")],
                   check=True, capture_output=True)
    return {"dir": folder, "root": root, "issuing": issuing, "nss": f"sql:{nss}"}


def pdfsig(trust: dict, path: Path) -> str:
    """poppler's pdfsig, with an NSS database that trusts our root only."""
    ran = subprocess.run(["pdfsig", "-nssdir", trust["nss"], str(path)], capture_output=True, text=True, timeout=60)
    return ran.stdout + ran.stderr


def root_only_context(trust: dict, crls: list[bytes] | None = None) -> ValidationContext:
    """pyHanko trusting our root alone; the intermediate as a mere hint; nothing fetched. Given CRLs it
    checks revocation of every certificate below the root and fails without an answer (hard-fail)."""
    return ValidationContext(trust_roots=[trust["root"]], other_certs=[trust["issuing"]], crls=crls or [],
                             allow_fetching=False, revocation_mode="hard-fail" if crls else "soft-fail")


async def lta_validation(signature, root: x509.Certificate):
    """pyHanko's PAdES-LTA validation (ETSI EN 319 102-1 §5.6.3; pyHanko 0.38's successor of validate_pdf_ltv_signature
    with RevocationInfoValidationType.PADES_LTA): our root alone trusted, revocation data required for every certificate
    below it (hard-fail), and none fetched — only what the PDF holds (DSS, document timestamps) counts."""
    from pyhanko.sign.validation.ades import ades_lta_validation
    from pyhanko.sign.validation.policy_decl import (
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager

    policy = CertValidationPolicySpec(trust_manager=SimpleTrustManager.build(trust_roots=[root]),
                                      revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))
    spec = SignatureValidationSpec(cert_validation_policy=policy, revinfo_gathering_policy=RevocationInfoGatheringSpec(
        online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY))
    return await ades_lta_validation(signature, PdfSignatureValidationSpec(spec))


def dss_of(pdf: bytes):
    """The DSS's OCSP responses and CRLs, read with pyHanko's reader: ([OCSPResponse], [CertificateList])."""
    import io

    from asn1crypto import crl as asn1_crl
    from asn1crypto import ocsp as asn1_ocsp
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import DocumentSecurityStore

    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(pdf)))
    return ([asn1_ocsp.OCSPResponse.load(ref.get_object().data) for ref in dss.ocsps],
            [asn1_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls])


def ocsp_statuses(responses) -> dict[int, str]:
    """serial → certificate status, over every single response of these OCSP responses."""
    return {single["cert_id"]["serial_number"].native: single["cert_status"].name
            for response in responses
            for single in response["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]}

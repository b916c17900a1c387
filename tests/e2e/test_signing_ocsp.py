"""The issuing CA's OCSP responder end to end, through the gateway, at the URL the citizen's certificate names.

Checked with the real `openssl ocsp` client and with pyHanko's validator fetching OCSP itself (trusting our
root only, the OCSP answer required for the signer): good while the identity is active, revoked once it is
suspended.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import uuid

import pytest
from asn1crypto import cms
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule

from services.signing.x509 import pem

from ..support.citizens import enrolled_app
from ..support.oidc import client_token
from ..support.operator import admin
from ..support.polling import eventually
from ..support.signing import create, result_of, signing_rp, wait_for

pytestmark = pytest.mark.e2e


def openssl_ocsp(trust: dict, cert_pem, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "ocsp", "-issuer", str(trust["dir"] / "issuing.pem"), "-cert", str(cert_pem), "-url", url,
                           "-CAfile", str(trust["dir"] / "root.pem")], capture_output=True, text=True, timeout=60)


def ocsp_required(trust: dict) -> ValidationContext:
    """pyHanko trusting our root alone, fetching revocation information itself, an OCSP answer required for the signer."""
    policy = RevocationCheckingPolicy(ee_certificate_rule=RevocationCheckingRule.OCSP_REQUIRED,
                                      intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK)
    return ValidationContext(trust_roots=[trust["root"]], other_certs=[trust["issuing"]], allow_fetching=True,
                             revinfo_policy=CertRevTrustPolicy(policy))


async def test_openssl_and_pyhanko_ask_the_responder_the_certificate_names(platform, kiosk, metadata, trust, tmp_path):
    app = await enrolled_app(platform, kiosk, tmp_path, "ocsp-phone")
    rp = signing_rp(platform, "Harbour Ferry Licensing")
    token = client_token(metadata, rp, "sign")
    document = f"Ferry licence {uuid.uuid4()}\n".encode()
    request = await create(platform, token, json={"document_name": "licence.txt", "sha256": hashlib.sha256(document).hexdigest()})
    await app.open_link(request["app_link"])
    await wait_for(platform, token, request["request_id"], "signed")
    signed_data = cms.ContentInfo.load(result_of(platform, token, request["request_id"]).content)["content"]
    serial = signed_data["signer_infos"][0]["sid"].chosen["serial_number"].native
    [signer] = {c.chosen.dump(): c.chosen for c in signed_data["certificates"] if c.chosen.serial_number == serial}.values()
    (tmp_path / "signer.pem").write_text(pem(signer))

    # The certificate names the responder at the gateway, beside its CRL.
    [url] = signer.ocsp_urls
    assert url == platform.gateway + "/v1/signing/ocsp"

    ran = await asyncio.to_thread(openssl_ocsp, trust, tmp_path / "signer.pem", url)
    assert ran.returncode == 0 and "Response verify OK" in ran.stderr, ran.stdout + ran.stderr
    assert f"{tmp_path / 'signer.pem'}: good" in ran.stdout, ran.stdout

    # pyHanko fetches the OCSP answer itself (the signature timestamp's TSA is checked without revocation here).
    context = ocsp_required(trust)
    status = await async_validate_detached_cms(document, signed_data, signer_validation_context=context,
                                               ts_validation_context=ValidationContext(trust_roots=[trust["root"]],
                                                                                       other_certs=[trust["issuing"]]))
    assert status.bottom_line, status.pretty_print_details()
    assert context.ocsps and context.ocsps[0]["response_status"].native == "successful"

    suspended = admin(platform, "set-state", app.profile.account_id, "suspended", "--reason", "reported stolen phone")
    assert suspended.returncode == 0, suspended.stderr

    async def revoked():
        ran = await asyncio.to_thread(openssl_ocsp, trust, tmp_path / "signer.pem", url)
        return ran if f"{tmp_path / 'signer.pem'}: revoked" in ran.stdout else None

    ran = await eventually(revoked, timeout_s=20)
    assert "Response verify OK" in ran.stderr and "Reason: certificateHold" in ran.stdout, ran.stdout + ran.stderr
    after = await async_validate_detached_cms(document, signed_data, signer_validation_context=ocsp_required(trust),
                                              ts_validation_context=ValidationContext(trust_roots=[trust["root"]],
                                                                                      other_certs=[trust["issuing"]]))
    assert not after.bottom_line and after.revoked

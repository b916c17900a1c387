"""The issuing CA's OCSP responder (RFC 6960), checked by the real `openssl ocsp` client and by asn1crypto.

`openssl ocsp` runs in a thread: the service answers on this test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from pathlib import Path
from urllib.parse import quote

from asn1crypto import ocsp, x509

from tests.support.auth_stand_in import state_changed

from .conftest import problem


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, timeout=60, text=True)


async def signed_certificate(signing) -> tuple[x509.Certificate, str, str]:
    """A citizen who signed once: their certificate, its serial (hex), their account."""
    rp = await signing.relying_party()
    citizen = await signing.citizen(rp)
    request_id = (await (await signing.ask(rp, sub=citizen.sub)).json())["request_id"]
    await signing.learn(citizen.phone.decided(await signing.prompt(request_id)))
    serial = (await (await signing.status(rp, request_id)).json())["certificate_serial"]
    doc = await signing.ctx.db["certificates"].find_one({"_id": serial})
    return x509.Certificate.load(bytes(doc["certificate"])), serial, citizen.account_id


def write_pems(signing, folder: Path, cert: x509.Certificate) -> None:
    from services.signing.x509 import pem
    authority = signing.ctx.authority
    (folder / "issuing.pem").write_text(pem(authority.issuing))
    (folder / "root.pem").write_text(pem(authority.root))
    (folder / "cert.pem").write_text(pem(cert))


async def openssl_ocsp(signing, folder: Path, *extra: str) -> subprocess.CompletedProcess:
    url = str(signing.http.make_url("/v1/signing/ocsp"))
    return await asyncio.to_thread(openssl, "ocsp", "-issuer", str(folder / "issuing.pem"), "-cert", str(folder / "cert.pem"),
                                   "-url", url, "-CAfile", str(folder / "root.pem"), *extra)


async def test_openssl_ocsp_says_good_then_revoked_with_time_and_reason(signing, tmp_path):
    cert, serial, account_id = await signed_certificate(signing)
    # The certificate names the responder, at the public URL (as its CRL distribution point).
    [access] = cert.authority_information_access_value.native
    assert access == {"access_method": "ocsp", "access_location": signing.ctx.settings.issuer + "/v1/signing/ocsp"}
    write_pems(signing, tmp_path, cert)

    ran = await openssl_ocsp(signing, tmp_path)
    assert ran.returncode == 0 and "Response verify OK" in ran.stderr, ran.stdout + ran.stderr
    assert f"{tmp_path / 'cert.pem'}: good" in ran.stdout, ran.stdout

    await signing.learn(state_changed(account_id, was="active", to="suspended"))

    ran = await openssl_ocsp(signing, tmp_path)
    assert ran.returncode == 0 and "Response verify OK" in ran.stderr, ran.stdout + ran.stderr
    assert f"{tmp_path / 'cert.pem'}: revoked" in ran.stdout and "Reason: certificateHold" in ran.stdout, ran.stdout
    # The nonce openssl sent came back (it would say "WARNING: no nonce in response" otherwise).
    assert "nonce" not in ran.stderr.lower(), ran.stderr
    doc = await signing.ctx.db["certificates"].find_one({"_id": serial})
    assert doc["status"] == "revoked"


def request_for(signing, serial: int, *, nonce: bytes | None = None) -> bytes:
    import hashlib
    issuing = signing.ctx.authority.issuing
    cert_id = {"hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": hashlib.sha1(issuing.subject.dump()).digest(),
               "issuer_key_hash": hashlib.sha1(issuing.public_key["public_key"].contents[1:]).digest(), "serial_number": serial}
    tbs = {"request_list": [{"req_cert": cert_id}]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()


async def test_an_unknown_serial_is_unknown_and_the_nonce_comes_back(signing):
    answer = await signing.http.post("/v1/signing/ocsp", data=request_for(signing, 0x1234567, nonce=b"n" * 16),
                                     headers={"Content-Type": "application/ocsp-request"})

    assert answer.status == 200 and answer.content_type == "application/ocsp-response"
    reply = ocsp.OCSPResponse.load(await answer.read())
    assert reply["response_status"].native == "successful"
    data = reply.basic_ocsp_response["tbs_response_data"]
    assert data["responses"][0]["cert_status"].name == "unknown"
    assert [(e["extn_id"].native, e["extn_value"].native) for e in data["response_extensions"]] == [("nonce", b"n" * 16)]


async def test_the_get_form_answers_too(signing):
    cert, _, _ = await signed_certificate(signing)
    der = request_for(signing, cert.serial_number, nonce=b"\xff" * 12)  # a run of 0xff: '/' in the base64
    path = "/v1/signing/ocsp/" + quote(base64.b64encode(der).decode(), safe="")
    assert "%2F" in path

    answer = await signing.http.get(path)

    assert answer.status == 200 and answer.headers["Cache-Control"] == "max-age=60"
    reply = ocsp.OCSPResponse.load(await answer.read())
    assert reply.basic_ocsp_response["tbs_response_data"]["responses"][0]["cert_status"].name == "good"
    assert reply.basic_ocsp_response["tbs_response_data"]["response_extensions"][0]["extn_value"].native == b"\xff" * 12


async def test_malformed_requests_get_an_ocsp_malformed_request(signing):
    for body in (b"not DER at all", b"\x30\x03\x02\x01\x01", b""):
        answer = await signing.http.post("/v1/signing/ocsp", data=body, headers={"Content-Type": "application/ocsp-request"})
        assert answer.status == 200, await answer.text()
        assert ocsp.OCSPResponse.load(await answer.read())["response_status"].native == "malformed_request"
    answer = await signing.http.get("/v1/signing/ocsp/%%%not-base64")
    assert answer.status == 200
    assert ocsp.OCSPResponse.load(await answer.read())["response_status"].native == "malformed_request"
    # Another CA's certificate: not ours to answer for.
    other = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": {
        "hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": b"\x00" * 20, "issuer_key_hash": b"\x01" * 20,
        "serial_number": 5}}]}}).dump()
    answer = await signing.http.post("/v1/signing/ocsp", data=other, headers={"Content-Type": "application/ocsp-request"})
    assert ocsp.OCSPResponse.load(await answer.read())["response_status"].native == "unauthorized"
    wrong = await signing.http.post("/v1/signing/ocsp", data=b"{}", headers={"Content-Type": "application/json"})
    assert wrong.status == 415 and (await problem(wrong))["type"].endswith("/unsupported-media-type")

"""The platform's CA chain, its CRLs and its RFC 3161 TSA, public to anyone who verifies a signature."""

from __future__ import annotations

import hashlib
import os

from asn1crypto import crl as asn1_crl
from asn1crypto import pem, tsp, x509

from services.signing.tsa import TimeStampResp

from .conftest import problem


async def test_the_chain_is_the_issuing_ca_then_the_root(signing):
    answer = await signing.http.get("/v1/signing/ca")

    assert answer.content_type == "application/pem-certificate-chain" and answer.headers["Cache-Control"] == "max-age=3600"
    issuing, root = (x509.Certificate.load(der) for _, _, der in pem.unarmor(await answer.read(), multiple=True))
    assert issuing.issuer == root.subject and root.self_signed == "maybe"
    assert issuing.ca and root.ca


async def test_the_root_crl_covers_the_issuing_ca_and_lists_nothing(signing):
    answer = await signing.http.get("/v1/signing/crl/root")

    crl = asn1_crl.CertificateList.load(await answer.read())
    assert answer.content_type == "application/pkix-crl"
    assert crl["tbs_cert_list"]["revoked_certificates"].native in (None, [])
    assert crl["tbs_cert_list"]["this_update"].native == signing.clock.now().replace(microsecond=0)


def timestamp_query(digest: bytes, algorithm: str = "sha256") -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest},
                             "nonce": int.from_bytes(os.urandom(8), "big"), "cert_req": True}).dump()


async def test_the_tsa_stamps_a_digest_at_the_services_time(signing):
    answer = await signing.http.post("/v1/signing/tsa", data=timestamp_query(hashlib.sha256(b"minutes").digest()),
                                     headers={"Content-Type": "application/timestamp-query"})

    assert answer.status == 200 and answer.content_type == "application/timestamp-reply"
    reply = TimeStampResp.load(await answer.read())
    assert reply["status"]["status"].native == "granted"
    info = reply["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert info["gen_time"].native == signing.clock.now()
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha256(b"minutes").digest()


async def test_the_tsa_answers_garbage_with_an_rfc_3161_rejection(signing):
    for body, fail in ((b"not DER at all", "bad_data_format"), (timestamp_query(b"short"), "bad_data_format"),
                       (timestamp_query(hashlib.md5(b"x").digest(), "md5"), "bad_alg")):
        answer = await signing.http.post("/v1/signing/tsa", data=body, headers={"Content-Type": "application/timestamp-query"})
        reply = TimeStampResp.load(await answer.read())
        assert (answer.status, reply["status"]["status"].native) == (200, "rejection")
        assert reply["status"]["fail_info"].native == {fail}


async def test_the_tsa_takes_only_timestamp_queries(signing):
    answer = await signing.http.post("/v1/signing/tsa", data=b"{}", headers={"Content-Type": "application/json"})
    assert answer.status == 415 and (await problem(answer))["type"].endswith("/unsupported-media-type")

"""The RFC 3161 timestamp authority: TimeStampReq in, a TSTInfo signed by the TSA key in the HSM out.

The same authority serves POST /v1/signing/tsa and, in process, pyHanko
(signature timestamps in CMS, document timestamps in PDFs) through
`InProcessTimeStamper` (signatures.py), so signing never makes an HTTP call to itself.

pyHanko's helpers load on the first timestamp, not at start (docs/operations.md, idle RSS): the process that
only serves the API at rest never needs them.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

from asn1crypto import algos, cms, core, tsp, x509
from prometheus_client import Counter

from libs.clock import Clock, SystemClock

from .hsm import HSM

# A policy OID under the UUID arc (ITU-T X.667 / RFC 4122), which needs no registration.
POLICY_OID = "2.25.166520346442460226946358123722012483790"
DIGESTS = {"sha256": 32, "sha384": 48, "sha512": 64}
TIMESTAMPS = Counter("harbour_signing_timestamps_total", "RFC 3161 timestamps answered, by outcome.", ["outcome"])


class TimeStampResp(tsp.TimeStampResp):
    """RFC 3161 §2.4.2 TimeStampResp: the token is OPTIONAL (absent from a rejection).

    asn1crypto declares it mandatory, so dumping a rejection raised and every rejection path answered 500.
    """

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def parse_query(raw: bytes) -> tsp.TimeStampReq | None:
    """A DER TimeStampReq, fully parsed (asn1crypto is lazy), or None when the bytes are not one."""
    try:
        query = tsp.TimeStampReq.load(raw, strict=True)
        query.native  # parse it all now, so garbage cannot fail later inside respond()
    except Exception:  # asn1crypto raises many types on garbage
        return None
    return query


def rejection(fail: str, text: str) -> TimeStampResp:
    """status rejection (2) with one failInfo bit and a reason a person can read."""
    TIMESTAMPS.labels("rejected").inc()
    return TimeStampResp({"status": {"status": "rejection", "status_string": [text], "fail_info": {fail}}})


class TimeStampAuthority:
    def __init__(self, hsm: HSM, key_label: str, certificate: x509.Certificate, chain: list[x509.Certificate], *,
                 clock: Clock | None = None) -> None:
        self.hsm = hsm
        self.clock = clock or SystemClock()
        self.key_label = key_label
        # Parsed from DER once: asn1crypto re-encodes built objects on every dump, which dominated the cost.
        self.certificate = x509.Certificate.load(certificate.dump())
        self.chain = [x509.Certificate.load(c.dump()) for c in chain]  # issuing CA, root
        self._tsa_name = x509.GeneralName.load(x509.GeneralName(name="directory_name", value=self.certificate.subject).dump())
        self._certificates = cms.CertificateSet.load(cms.CertificateSet([self.certificate, *self.chain]).dump())
        self._sid = cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber(
            {"issuer": self.certificate.issuer, "serial_number": self.certificate.serial_number})})

    @cached_property
    def _signing_certificate(self) -> tsp.SigningCertificateV2:
        from pyhanko.sign.general import as_signing_certificate_v2

        return tsp.SigningCertificateV2.load(as_signing_certificate_v2(self.certificate).dump())

    async def respond(self, request: tsp.TimeStampReq) -> TimeStampResp:
        from pyhanko.sign.general import simple_cms_attribute
        from pyhanko.sign.timestamps.common_utils import get_nonce

        refused = self._refusal(request)
        if refused is not None:
            return refused
        imprint = request["message_imprint"]
        now = self.clock.now()
        info = {
            "version": "v1",
            "policy": POLICY_OID,
            "message_imprint": imprint,
            "serial_number": get_nonce(),
            "gen_time": now,
            "accuracy": {"seconds": 1},
            "tsa": self._tsa_name,
        }
        if request["nonce"].native is not None:
            info["nonce"] = request["nonce"]
        tst_info = tsp.TSTInfo(info).dump()
        signed_attrs = cms.CMSAttributes([
            simple_cms_attribute("content_type", "tst_info"),
            simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(now)})),
            simple_cms_attribute("signing_certificate_v2", self._signing_certificate),
            simple_cms_attribute("message_digest", hashlib.sha256(tst_info).digest()),
        ])
        signature = await self.hsm.sign(self.key_label, signed_attrs.dump())
        signer_info = cms.SignerInfo({
            "version": "v1",
            "sid": self._sid,
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signed_attrs": signed_attrs,
            "signature": signature,
        })
        signed_data = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(tst_info)},
            "signer_infos": [signer_info],
        }
        if request["cert_req"].native:
            signed_data["certificates"] = self._certificates
        token = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})
        TIMESTAMPS.labels("granted").inc()
        return TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})

    @staticmethod
    def _refusal(request: tsp.TimeStampReq) -> TimeStampResp | None:
        """The RFC 3161 rejection this request earns, if any (failInfo names per §2.4.2)."""
        if request["version"].native != "v1":
            return rejection("bad_request", "only TimeStampReq version 1 is supported")
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in DIGESTS:
            return rejection("bad_alg", f"unsupported hash algorithm {algorithm}; use sha256, sha384 or sha512")
        if imprint["hash_algorithm"]["parameters"].native is not None:
            return rejection("bad_alg", "the hash algorithm must carry no parameters")
        if len(imprint["hashed_message"].native) != DIGESTS[algorithm]:
            return rejection("bad_data_format", "the hashed message has the wrong length for its algorithm")
        if request["req_policy"].native not in (None, POLICY_OID):
            return rejection("unaccepted_policy", "this TSA issues under its own policy only")
        # We understand no extension, critical or not: refusing them all is the stricter reading of §2.4.1.
        if request["extensions"].native:
            return rejection("unaccepted_extensions", "this TSA accepts no request extensions")
        return None

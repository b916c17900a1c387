"""Making signatures with pyHanko and the citizen's key in the HSM.

Imported on the first signature (signing_requests.py), not at start: pyHanko is most of signing's idle memory
(docs/operations.md). The sandbox's job for an upload (`inspect_upload`) is in uploads.py, which the forkserver
preloads without this module.

- a SHA-256 digest → a detached CMS SignedData, CAdES baseline (ESS
  signing-certificate-v2, signing time) with a signature timestamp
  (id-aa-signatureTimeStampToken) from our TSA, and the validation data (authority.ValidationData) in
  SignedData.certificates and SignedData.crls (CRLs, OCSP responses as id-ri-ocsp-response): CAdES-B-LT;
- a PDF → PAdES (ETSI.CAdES.detached) with a signature timestamp; then, in a revision of its own, the DSS with
  the validation data of the signer's chain and of the TSA's; then a document timestamp (ETSI.RFC3161) from our
  TSA over all that: PAdES-B-LTA.

A PDF signature is invisible unless the relying party asked for an appearance (a page and a box): then the field is
on that page and shows a stamp — the name the citizen approved, "Signed with Harbour ID" and the signing time — in
the platform's PDF font, which prints Chinese (stamps.py).
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

from asn1crypto import cms, ocsp, tsp, x509
from asn1crypto import crl as asn1_crl
from prometheus_client import Histogram
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.pkcs11 import PKCS11Signer
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator import ValidationContext

from .authority import ValidationData

from .hsm import HSM
from .stamps import visible
from .tsa import TimeStampAuthority, TimeStampResp
from .uploads import new_field_name

SIGNATURE_SECONDS = Histogram(
    "harbour_signing_signature_seconds",
    "Time to produce one signature (HSM, timestamp and packaging), by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class _OfflineByDesign(logging.Filter):
    """pyHanko warns on every PDF that embeds validation data while fetching is off ("may give rise to unexpected
    results"): ours is made in process and complete (authority.validation_data), so that warning is noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_OfflineByDesign())


class InProcessTimeStamper(TimeStamper):
    """pyHanko's TimeStamper answered by our own authority, without a network round trip."""

    def __init__(self, authority: TimeStampAuthority) -> None:
        super().__init__(include_nonce=True)
        self.authority = authority

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> TimeStampResp:
        return await self.authority.respond(req)


class HSMSigner(PKCS11Signer):
    """pyHanko's PKCS#11 signer, its signatures made by `HSM.sign`: hashed here, CKM_ECDSA on the token, one session
    use at a time with every other (hsm.py says why), the latency measured there."""

    def __init__(self, hsm: HSM, key_label: str, **options) -> None:
        super().__init__(hsm.session, key_label=key_label, **options)
        self.hsm = hsm

    def _load_objects(self) -> None:
        # The certificate and chain are ours and the key is used by label through HSM.sign: pyHanko need not look
        # anything up on the token (it would, from the event loop's thread, alongside the HSM's own).
        self._init_cert_registry()  # the certificates given, nothing pulled (other_certs_to_pull=())
        self._loaded = True

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            return await super().async_sign_raw(data, digest_algorithm, dry_run=True)  # a size estimate: no token
        return await self.hsm.sign(self.key_label, data, digest_algorithm)


def citizen_signer(hsm: HSM, key_label: str, certificate: x509.Certificate, chain: list[x509.Certificate]) -> PKCS11Signer:
    # The certificate and chain come from our store: nothing but the key is looked up on the token.
    return HSMSigner(hsm, key_label, signing_cert=certificate, ca_chain=chain, other_certs_to_pull=(), embed_roots=True,
                     # hash here, CKM_ECDSA on the token: SoftHSM2 has no CKM_ECDSA_SHA256, and only 32 bytes travel
                     use_raw_mechanism=True)


def validation_context(data: ValidationData) -> ValidationContext:
    """Our root alone trusted, nothing fetched, every certificate below the root checked against `data` (hard-fail):
    what pyHanko validates the signer and the TSA with before signing, and copies into the DSS."""
    return ValidationContext(trust_roots=[data.root], other_certs=data.certificates, crls=data.crls, ocsps=data.ocsps,
                             allow_fetching=False, revocation_mode="hard-fail")


def with_validation_data(content_info: cms.ContentInfo, data: ValidationData) -> cms.ContentInfo:
    """The SignedData with the validation data added where CAdES baseline B-LT puts it (EN 319 122-1 §6.3): certificates
    in SignedData.certificates, CRLs and OCSP responses (RFC 5940 id-ri-ocsp-response) in SignedData.crls. Neither field
    is signed, so the signature and its timestamp stand; version 5 because an `other` revocation choice is present."""
    signed_data = cms.ContentInfo.load(content_info.dump())["content"]  # as parsed: pyHanko's built object mixes types
    certificates = [c.chosen for c in signed_data["certificates"]]
    present = {c.issuer_serial for c in certificates}
    certificates += [c for c in data.certificates if c.issuer_serial not in present]
    revocation = [cms.RevocationInfoChoice({"crl": asn1_crl.CertificateList.load(der)}) for der in data.crls]
    revocation += [cms.RevocationInfoChoice({"other": {"other_rev_info_format": "ocsp_response",
                                                       "other_rev_info": ocsp.OCSPResponse.load(der)}}) for der in data.ocsps]
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData({
        "version": "v5", "digest_algorithms": signed_data["digest_algorithms"],
        # v1 read it as PKCS#7's ContentInfo; detached (no content), the bytes are the same
        "encap_content_info": cms.EncapsulatedContentInfo.load(signed_data["encap_content_info"].dump()),
        "certificates": certificates, "crls": revocation, "signer_infos": signed_data["signer_infos"]})})


async def sign_digest(signer: PKCS11Signer, tsa: TimeStampAuthority, sha256: bytes, *, validation: ValidationData) -> bytes:
    """Detached CMS (DER) over a document whose SHA-256 is `sha256`: CAdES-B-LT."""
    started = time.perf_counter()
    content_info: cms.ContentInfo = await signer.async_sign(
        sha256, "sha256", use_pades=True, is_pdf_sig=False, timestamper=InProcessTimeStamper(tsa))
    der = with_validation_data(content_info, validation).dump()
    SIGNATURE_SECONDS.labels("cms").observe(time.perf_counter() - started)
    return der


async def sign_pdf(signer: PKCS11Signer, tsa: TimeStampAuthority, pdf: bytes, *, reason: str, signer_name: str,
                   validation: ValidationData, appearance: dict[str, Any] | None = None, font: str = "") -> bytes:
    """PAdES B-LTA: the signature with its timestamp in a new revision (in a new field: a PDF already signed is
    countersigned), the DSS (validation data of the signer's and the TSA's chains) in the next, then a document
    timestamp over both in another.

    pyHanko validates the signer's and the TSA's certificates against `validation` before signing (hard-fail, nothing
    fetched) and writes what it used into the DSS. Its own `use_pades_lta` is not used: it insists on validating the
    PDF's latest document timestamp, which refuses a PDF timestamped by some other TSA."""
    started = time.perf_counter()
    timestamper = InProcessTimeStamper(tsa)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    meta = signers.PdfSignatureMetadata(
        field_name=new_field_name(writer.prev), md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason, name=signer_name, location="Harbour ID",
        embed_validation_info=True, validation_context=validation_context(validation),
        signer_key_usage={"non_repudiation"},
        dss_settings=DSSContentSettings(placement=SigDSSPlacementPreference.SEPARATE_REVISION, include_vri=False))
    signed = io.BytesIO()
    stamp = await visible(appearance, meta.field_name, font=font, signer_name=signer_name)
    text_params = stamp.pop("text_params", None)
    await signers.PdfSigner(meta, signer=signer, timestamper=timestamper, **stamp).async_sign_pdf(
        writer, output=signed, appearance_text_params=text_params)
    stamped = io.BytesIO()
    await signers.PdfTimeStamper(timestamper).async_timestamp_pdf(
        IncrementalPdfFileWriter(signed, strict=False), "sha256", output=stamped)
    SIGNATURE_SECONDS.labels("pdf").observe(time.perf_counter() - started)
    return stamped.getvalue()

"""Sole control: the citizen's device-signed decision checked over exactly the hash the HSM will sign, and kept.

The prompt of a signature names the document's full SHA-256 (`details.sha256`; the phone shows its start,
`details.sha256_start`, for people to compare). Right before the HSM is asked (before even a key is generated),
`check` takes the hash of the bytes about to be signed — the relying party's hash for a CMS, the SHA-256 of the
stored PDF for a PAdES signature — and requires that the prompt names exactly it and that the decision JWS
verifies with the device's key over that prompt's digest, at the time auth recorded it. Anything else is refused
(`decision-mismatch`) and the HSM never hears of it.

What was checked is kept beside the signature (collection `evidence`, one record per signature, its `_id` the
SHA-256 of the signature value, so a signature presented for verification finds it): the prompt (its free text encrypted under signing's field cipher, like
the request's), its digest, the decision JWS, the device's public key, and the times. The verification endpoint
finds it for a signature it verifies and checks it again (`report`); nothing of the citizen in the clear beyond
what signing already stores (the account id, the hash).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from libs.approvals import ApprovalRequest, DecisionClaims, DecisionRejected, canonical_json, verify_decision
from libs.crypto import DecryptionError, FieldCipher
from libs.tokens import load_public_jwk

EVIDENCE_VERSION = 1


class EvidenceMismatch(ValueError):
    """The decision does not cover exactly what is about to be signed."""


def signature_id(signature_value: bytes) -> str:
    """How a signature is named in the evidence store: the SHA-256 (hex) of its signature value (signer_info.signature)."""
    return hashlib.sha256(signature_value).hexdigest()


def check(approval: ApprovalRequest, data: dict[str, Any], *, to_sign_sha256: str, decided_at: datetime) -> DecisionClaims:
    """The approving claims, if the prompt names exactly `to_sign_sha256` and the decision (approval.decided `data`)
    verifies with the device key it carries over that prompt's digest, at `decided_at`; else EvidenceMismatch."""
    if approval.action != "sign" or approval.details.get("sha256") != to_sign_sha256.lower():
        raise EvidenceMismatch("the approved prompt does not name the hash about to be signed")
    try:
        claims = verify_decision(data["decision_jws"], load_public_jwk(data["device_jwk"]), approval_id=approval.approval_id,
                                 digest=approval.digest(), at=decided_at)
    except (DecisionRejected, KeyError, ValueError, TypeError) as exc:
        raise EvidenceMismatch(f"the decision does not verify over the prompt naming this hash: {exc}") from None
    if claims.decision != "approve":
        raise EvidenceMismatch("the decision is not an approval")
    return claims


def record(cipher: FieldCipher, approval: ApprovalRequest, data: dict[str, Any], claims: DecisionClaims, *,
           request_id: str, sha256: str, decided_at: datetime, checked_at: datetime, signature_value: bytes,
           certificate_serial: str, kind: str, signed_length: int | None) -> dict[str, Any]:
    """The evidence record kept beside the signature (`signed_length`: a PDF's length before it was signed)."""
    return {
        "_id": signature_id(signature_value), "version": EVIDENCE_VERSION, "request_id": request_id,
        "kind": kind, "sha256": sha256, "signed_length": signed_length, "certificate_serial": certificate_serial,
        "approval_id": approval.approval_id, "account_id": approval.account_id,
        "prompt_digest": approval.digest(),
        "prompt": cipher.seal_bytes(canonical_json(approval.model_dump(mode="json")), record_id=request_id, field="prompt"),
        "decision_jws": data["decision_jws"], "device_id": data["device_id"], "device_jwk": data["device_jwk"],
        "decision_iat": claims.iat, "uv": claims.uv,
        "decided_at": decided_at, "checked_at": checked_at,
    }


# The relying party's free text in a prompt's details, never in a report: the document's name, a stamp's name.
FREE_TEXT = ("document_name", "stamp_name")


def report(cipher: FieldCipher, evidence: dict[str, Any], *, covers: bool | None) -> dict[str, Any]:
    """What the verification endpoint says of a signature's evidence, checked again now: the stored prompt still has
    the stored digest and names the stored hash, the decision verifies with the stored device key over it when it was
    made, and (`covers`, judged by the caller) the signature covers that hash. No free text, no account id."""
    problems = []
    try:
        approval = ApprovalRequest.model_validate_json(
            cipher.open_bytes(evidence["prompt"], record_id=evidence["request_id"], field="prompt"))
        if approval.digest() != evidence["prompt_digest"]:
            problems.append("the stored prompt does not match its digest")
        if approval.details.get("sha256") != evidence["sha256"]:
            problems.append("the stored prompt does not name the signed hash")
    except (DecryptionError, ValueError):  # a closed account's key shredded, or a damaged record
        approval = None
        problems.append("the stored prompt cannot be read")
    decided_at = evidence["decided_at"]
    try:
        claims = verify_decision(evidence["decision_jws"], load_public_jwk(evidence["device_jwk"]),
                                 approval_id=evidence["approval_id"], digest=evidence["prompt_digest"], at=decided_at)
        if claims.decision != "approve":
            problems.append("the decision is not an approval")
    except (DecisionRejected, ValueError) as exc:
        problems.append(f"the decision does not verify: {exc}")
    if covers is False:
        problems.append("the signature does not cover the approved document")
    shown = None
    if approval is not None:
        details = {k: v for k, v in approval.details.items() if k not in FREE_TEXT}
        shown = {"approval_id": approval.approval_id, "action": approval.action,
                 "requester": approval.requester.model_dump(mode="json"), "details": details,
                 "expires_at": approval.expires_at.isoformat()}
    return {
        "verified": not problems, "problems": problems,
        "approved_sha256": evidence["sha256"], "covers_approved_document": covers,
        "prompt_digest": evidence["prompt_digest"], "prompt": shown,
        "decision_jws": evidence["decision_jws"], "device_id": evidence["device_id"], "device_jwk": evidence["device_jwk"],
        "user_verification": evidence.get("uv"),
        "decided_at": _iso(decided_at), "checked_at": _iso(evidence["checked_at"]),
        "certificate_serial": evidence["certificate_serial"],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def signature_value(kind: str, body: bytes) -> bytes:
    """The signature value of the signature signing just made: of the CMS, or of the PDF's newest signature (not its
    document timestamp). Our own output, parsed in this process."""
    from asn1crypto import cms

    if kind == "cms":
        return cms.ContentInfo.load(body)["content"]["signer_infos"][0]["signature"].native
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    ours = [s for s in PdfFileReader(io.BytesIO(body), strict=False).embedded_signatures if s.sig_object_type == "/Sig"]
    return ours[-1].signer_info["signature"].native

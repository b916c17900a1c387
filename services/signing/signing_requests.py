"""Signing requests: a relying party sends a hash or a PDF, the citizen approves on the phone, signing signs.

Life cycle: pending (waiting for the citizen; anonymous requests first wait
for the app to open their link) → signed (result waiting to be fetched) |
denied (the citizen said no) | refused (the citizen may not sign: not `plus`,
or not active) | expired. Only `plus` citizens sign. The signature is made
when signing consumes the device-signed `approval.decided` and has checked
the device's signature over exactly the prompt it published.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from asn1crypto import x509
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field
from pyhanko.pdf_utils.misc import PdfError
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.approvals import ApprovalRequest, DecisionRejected, Requester, seal_prompt, verify_decision
from libs.events import CloudEvent, Outbox, agency_topic
from libs.events.audit import record_audit
from libs.events.topics import APPROVAL_REQUESTED, SIGNING
from libs.service.validation import DisplayText
from libs.tokens import load_public_jwk

from .authority import active_certificate, issue_for_citizen
from .callers import Device, RelyingParty
from .context import Signing
from .signatures import citizen_signer, sign_digest, sign_pdf
from .collections import CITIZENS, CLIENTS, DOCUMENTS, REQUESTS, RESULTS, SUBJECTS

APP_LINK_PREFIX = "harbourid://sign?request="
HASH_SHOWN = 16  # hex characters of the document hash the citizen sees
SIGNATURES = Counter("harbour_signing_signatures_total", "Signing requests finished, by kind and outcome.", ["kind", "outcome"])
MEDIA_TYPES = {"cms": "application/pkcs7-signature", "pdf": "application/pdf"}


# The relying party's free text (document name, purpose) is about the citizen's business: personal data, so a
# request stores it only encrypted, under its own data key (issue 14, item 15).
def _text_record(request_id: str) -> str:
    return f"request.{request_id}"


def _with_text(signing: Signing, doc: dict[str, Any]) -> dict[str, Any]:
    """The stored request with its free text decrypted (a request stored before encryption keeps it in the clear)."""
    if "text" not in doc:
        return doc
    return {**doc, **signing.cipher.decrypt_record(doc["text"], record_id=_text_record(doc["_id"]))}


class Refused(Exception):
    def __init__(self, reason: str, message: str, status: int, **extra: Any) -> None:
        super().__init__(message)
        self.reason, self.status, self.extra = reason, status, extra


# Shown on the citizen's phone: one line, no control characters (pydantic refuses lone surrogates itself).
DocumentName = Annotated[DisplayText, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Purpose = Annotated[DisplayText, Field(min_length=1, max_length=300)]


class SignHashBody(BaseModel):
    """Sign a document the relying party keeps: its SHA-256 and the name the citizen will see."""

    model_config = ConfigDict(extra="forbid")
    document_name: DocumentName
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the document, hex")
    purpose: Purpose | None = None


class DocumentQuery(BaseModel):
    """The query of a PDF upload sent as application/pdf (multipart sends the same as form fields)."""

    model_config = ConfigDict(extra="forbid")
    document_name: DocumentName | None = None
    purpose: Purpose | None = None


class NewDocument(BaseModel):
    """What api.py hands over for either kind (the PDF already checked by signatures.check_pdf)."""

    kind: Literal["cms", "pdf"]
    document_name: DocumentName
    sha256: str
    purpose: Purpose | None = None
    pages: int | None = None
    pdf: bytes | None = None


def _approval(doc: dict[str, Any]) -> ApprovalRequest:
    details = {"document_name": doc["document_name"], "kind": doc["kind"], "sha256_start": doc["sha256"][:HASH_SHOWN]}
    if doc.get("pages"):
        details["pages"] = doc["pages"]
    return ApprovalRequest(
        approval_id=f"sign-{doc['_id']}",
        account_id=doc["account_id"],
        action="sign",
        requester=Requester(service="signing", client_id=doc["client_id"], client_name=doc["client_name"]),
        purpose=doc["purpose"],
        details=details,
        expires_at=doc["expires_at"],
    )


async def _ask_citizen(signing: Signing, session: AsyncClientSession, doc: dict[str, Any]) -> None:
    approval = _approval(doc)
    await Outbox(signing.db).add(session, APPROVAL_REQUESTED.name, CloudEvent(
        source="/signing", type="approval.requested", subject=approval.approval_id,
        data=seal_prompt(approval, signing.settings.auth_sealing_jwk)))  # the purpose and document name: for auth's eyes only


def _may_sign(citizen: dict[str, Any] | None) -> None:
    """Only an active `plus` identity gets a certificate bound to it."""
    if citizen is None:
        raise Refused("citizen-unknown", "this citizen is not known to signing yet; retry shortly", 409, headers={"Retry-After": "1"})
    if citizen.get("assurance") != "plus":
        raise Refused("assurance-too-low", "only citizens with a plus identity (verified in person) can sign documents", 403)
    if citizen.get("state") != "active":
        raise Refused("identity-not-active", "this identity is suspended or revoked and cannot sign", 403)


async def _refuse(signing: Signing, session: AsyncClientSession, doc: dict[str, Any], reason: str, status: str = "refused") -> None:
    """Close the request unsigned (the citizen said no, or may not sign) and tell the relying party."""
    await signing.db[REQUESTS].update_one({"_id": doc["_id"]}, {"$set": {"status": status, "error": reason, "decided_at": datetime.now(UTC)}},
                                     session=session)
    await signing.db[DOCUMENTS].delete_one({"_id": doc["_id"]}, session=session)
    SIGNATURES.labels(doc["kind"], reason).inc()
    await Outbox(signing.db).add(session, agency_topic(doc["client_id"]), CloudEvent(
        source="/signing", type="signature.refused", subject=doc["_id"],
        data={"request_id": doc["_id"], "sub": await _sub(signing, session, doc), "reason": reason}))


async def _sub(signing: Signing, session: AsyncClientSession | None, doc: dict[str, Any]) -> str | None:
    """The citizen's pairwise subject at the requesting client's sector: the only identifier that client gets."""
    if doc.get("sub"):
        return doc["sub"]
    if doc.get("account_id") is None:
        return None
    subject = await signing.db[SUBJECTS].find_one({"sector": doc["sector"], "account_id": doc["account_id"]}, session=session)
    return subject["_id"] if subject else None


async def create(signing: Signing, caller: RelyingParty, new: NewDocument) -> dict[str, Any]:
    client = await signing.db[CLIENTS].find_one({"_id": caller.client_id})
    if client is None:
        raise Refused("unknown-client", "this client is not known to signing yet; retry shortly", 409, headers={"Retry-After": "1"})
    account_id = None
    if caller.sub is not None:
        subject = await signing.db[SUBJECTS].find_one({"_id": caller.sub, "sector": client["sector"]})
        citizen = await signing.db[CITIZENS].find_one({"_id": subject["account_id"]}) if subject else None
        _may_sign(citizen)
        account_id = subject["account_id"]
    now = datetime.now(UTC).replace(microsecond=0)
    request_id = secrets.token_urlsafe(16)
    text = {"document_name": new.document_name, "purpose": new.purpose or f"Sign {new.document_name}"}
    stored = {
        "_id": request_id, "client_id": caller.client_id, "client_name": client["name"], "sector": client["sector"],
        "account_id": account_id, "sub": caller.sub, "kind": new.kind, "text": signing.cipher.encrypt_record(text, record_id=_text_record(request_id)),
        "sha256": new.sha256.lower(), "pages": new.pages,
        "status": "pending", "created_at": now, "expires_at": now + timedelta(seconds=signing.settings.request_ttl_s),
    }
    doc = {**stored, **text}  # the prompt shows the text; only its encrypted form is stored

    async def work(session: AsyncClientSession) -> None:
        await signing.db[REQUESTS].insert_one(stored, session=session)
        if new.pdf is not None:
            sealed = signing.cipher.encrypt_record({"pdf": base64.b64encode(new.pdf).decode()}, record_id=request_id)
            await signing.db[DOCUMENTS].insert_one({"_id": request_id, "sealed": sealed, "expires_at": doc["expires_at"]}, session=session)
        if account_id is not None:
            await _ask_citizen(signing, session, doc)

    await signing.transaction(work)
    answer = {"request_id": request_id, "status": "pending", "kind": new.kind, "expires_at": doc["expires_at"].isoformat()}
    if account_id is None:
        answer["app_link"] = APP_LINK_PREFIX + request_id
    return answer


async def claim(signing: Signing, device: Device, request_id: str) -> dict[str, Any]:
    """The app opened an anonymous request's link: it becomes this citizen's request, if they may sign."""
    now = datetime.now(UTC)
    citizen = await signing.db[CITIZENS].find_one({"_id": device.account_id})

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        doc = await signing.db[REQUESTS].find_one_and_update(
            {"_id": request_id, "status": "pending", "expires_at": {"$gt": now}, "account_id": None},
            {"$set": {"account_id": device.account_id}}, return_document=True, session=session)
        if doc is None:
            raise Refused("link-unusable", "this request has expired or was opened by someone else", 409)
        try:
            _may_sign(citizen)
        except Refused as exc:
            if exc.status == 409:
                raise
            await _refuse(signing, session, doc, exc.reason)
            return {"refused": exc}
        await _ask_citizen(signing, session, _with_text(signing, doc))
        return doc

    doc = await signing.transaction(work)
    if "refused" in doc:
        raise doc["refused"]
    return {"request_id": request_id, "approval_id": f"sign-{request_id}", "client_name": doc["client_name"]}


async def on_decided(signing: Signing, session: AsyncClientSession, data: dict[str, Any]) -> None:
    """approval.decided for one of our prompts: check the device's signature ourselves, then sign or close."""
    request_id = data["approval_id"].removeprefix("sign-")
    doc = await signing.db[REQUESTS].find_one({"_id": request_id}, session=session)
    if doc is None or doc["status"] != "pending" or doc["account_id"] != data["account_id"]:
        return
    doc = _with_text(signing, doc)
    approval = _approval(doc)
    try:
        claims = verify_decision(data["decision_jws"], load_public_jwk(data["device_jwk"]), approval_id=approval.approval_id, digest=approval.digest())
    except DecisionRejected:
        return  # not a decision over what we asked: ignore it
    if claims.decision != "approve":
        await _refuse(signing, session, doc, "denied", status="denied")
        return
    citizen = await signing.db[CITIZENS].find_one({"_id": doc["account_id"]}, session=session)
    try:
        _may_sign(citizen)
    except Refused as exc:
        await _refuse(signing, session, doc, exc.reason)
        return

    outbox = Outbox(signing.db)
    cert_doc = await active_certificate(signing.db, doc["account_id"], session)
    if cert_doc is None:
        cert_doc = await issue_for_citizen(signing.authority, signing.db, session, doc["account_id"])
        await outbox.add(session, SIGNING.name, CloudEvent(
            source="/signing", type="certificate.issued", subject=cert_doc["_id"],
            data={"serial": cert_doc["_id"], "account_id": doc["account_id"], "not_after": cert_doc["not_after"].isoformat()}))
        await record_audit(outbox, session, service="signing", subject=doc["account_id"], action="certificate.issue",
                           actor="signing", serial=cert_doc["_id"])
    certificate = x509.Certificate.load(bytes(cert_doc["certificate"]))
    signer = citizen_signer(signing.hsm, cert_doc["key_label"], certificate, signing.authority.chain)
    if doc["kind"] == "cms":
        body = await sign_digest(signer, signing.tsa, bytes.fromhex(doc["sha256"]))
    else:
        stored = await signing.db[DOCUMENTS].find_one({"_id": request_id}, session=session)
        pdf = base64.b64decode(signing.cipher.decrypt_record(stored["sealed"], record_id=request_id)["pdf"])
        try:
            body = await sign_pdf(signer, signing.tsa, pdf, reason=doc["purpose"], signer_name=certificate.subject.native["common_name"])
        except PdfError:
            # The upload passed check_pdf but pyHanko cannot add a revision to it: tell the relying party, do not retry.
            await _refuse(signing, session, doc, "unsignable-pdf")
            return
        await signing.db[DOCUMENTS].delete_one({"_id": request_id}, session=session)
    now = datetime.now(UTC).replace(microsecond=0)
    await signing.db[RESULTS].insert_one(
        {"_id": request_id, "sealed": signing.cipher.encrypt_record({"body": base64.b64encode(body).decode()}, record_id=request_id),
         "media_type": MEDIA_TYPES[doc["kind"]], "sha256": hashlib.sha256(body).hexdigest(),
         "expires_at": now + timedelta(seconds=signing.settings.result_ttl_s)}, session=session)
    await signing.db[REQUESTS].update_one({"_id": request_id}, {"$set": {
        "status": "signed", "decided_at": now, "signed_at": now, "certificate_serial": cert_doc["_id"]}}, session=session)
    SIGNATURES.labels(doc["kind"], "signed").inc()
    await outbox.add(session, agency_topic(doc["client_id"]), CloudEvent(
        source="/signing", type="signature.completed", subject=request_id,
        # No document name: the relying party has it by request id, and free text stays off the outbox and Kafka.
        data={"request_id": request_id, "sub": await _sub(signing, session, doc), "kind": doc["kind"],
              "sha256": doc["sha256"], "certificate_serial": cert_doc["_id"], "signed_at": now.isoformat()}))
    await record_audit(outbox, session, service="signing", subject=doc["account_id"], action="signature.create",
                       actor=data["device_id"], client_id=doc["client_id"], request_id=request_id, serial=cert_doc["_id"])


async def _own_request(signing: Signing, caller: RelyingParty, request_id: str) -> dict[str, Any]:
    doc = await signing.db[REQUESTS].find_one({"_id": request_id, "client_id": caller.client_id})
    if doc is None:
        raise Refused("not-found", "no such request for this client", 404)
    return doc


def _status(doc: dict[str, Any]) -> str:
    if doc["status"] == "pending" and datetime.now(UTC) >= doc["expires_at"]:
        return "expired"
    return doc["status"]


async def status(signing: Signing, caller: RelyingParty, request_id: str) -> dict[str, Any]:
    doc = _with_text(signing, await _own_request(signing, caller, request_id))
    view = {"request_id": doc["_id"], "status": _status(doc), "kind": doc["kind"], "document_name": doc["document_name"],
            "sha256": doc["sha256"], "created_at": doc["created_at"].isoformat(), "expires_at": doc["expires_at"].isoformat()}
    if doc["status"] == "signed":
        view |= {"signed_at": doc["signed_at"].isoformat(), "certificate_serial": doc["certificate_serial"],
                 "sub": await _sub(signing, None, doc)}
    if doc["status"] in ("denied", "refused"):
        view["error"] = "access_denied" if doc["status"] == "denied" else doc["error"]
    return view


async def take_result(signing: Signing, caller: RelyingParty, request_id: str) -> tuple[bytes, str]:
    """The signature (CMS) or the signed PDF: (bytes, media type). Readable until the result expires."""
    doc = await _own_request(signing, caller, request_id)
    state = _status(doc)
    if state == "denied":
        raise Refused("access_denied", "the citizen declined to sign", 403)
    if state == "refused":
        raise Refused(doc["error"], "this citizen cannot sign", 403)
    if state == "pending":
        raise Refused("not-ready", "the citizen has not answered yet", 409, headers={"Retry-After": "1"})
    if state == "expired":
        raise Refused("gone", "the request expired without an answer", 410)
    result = await signing.db[RESULTS].find_one({"_id": request_id, "expires_at": {"$gt": datetime.now(UTC)}})
    if result is None:
        raise Refused("gone", "the signed result has expired", 410)
    body = base64.b64decode(signing.cipher.decrypt_record(result["sealed"], record_id=request_id)["body"])
    return body, result["media_type"]

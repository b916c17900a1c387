"""Signing requests: a relying party sends a hash or a PDF, the citizen approves on the phone, signing signs.

The life cycle (ask, claim by link, the verified decision, status, the
result) is libs/consented_requests; what is signing's own is here: only an
active `plus` citizen signs (refused at creation when logged in, at claim
when anonymous, and checked again before signing), and the signature itself
— a detached CMS over a hash, or a PAdES signed PDF — made with the citizen's
key in the HSM once signing has verified the device's decision. The result
can be fetched more than once until it expires (a signature is no secret).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from asn1crypto import x509
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, Json, model_validator
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.approvals import DecisionRejected, verify_recorded_decision
from libs.consented_requests import Claimed, ConsentedRequests, Decided, Declined, RequestLifecycle
from libs.errors import Refused
from libs.events import agency_topic
from libs.events.topics import SIGNING
from libs import result_callbacks
from libs.projections import CLIENTS, pairwise_subject, wants_agency_events
from libs.service.logging import get_logger
from libs.service.validation import DisplayText
from libs.tokens import load_public_jwk

from .authority import active_certificate, issue_for_citizen, validation_data
from .callers import Device, RelyingParty
from . import evidence
from .collections import CITIZENS, DOCUMENTS, EVIDENCE, REQUESTS, RESULTS
from .context import Signing
from .errors import CLOSED_BECAUSE, AssuranceTooLow, DecisionMismatch, IdentityNotActive, ResultExpired, UnsignablePdf

HASH_SHOWN = 16  # hex characters of the document hash the citizen sees (the prompt binds the whole hash)
# A PDF waits for its decision this long after the request expires: a decision made in time may arrive late (broker
# outage, a restarting service) and is still signed. As long as approvals.decided keeps it (retention 3 days).
DOCUMENT_KEPT_AFTER_EXPIRY = timedelta(days=3)
SIGNATURES = Counter("harbour_signing_signatures_total", "Signing requests finished, by kind and outcome.", ["kind", "outcome"])
MEDIA_TYPES = {"cms": "application/pkcs7-signature", "pdf": "application/pdf"}
log = get_logger("harbour.signing")


class SigningStatus(StrEnum):
    PENDING = "pending"  # waiting for the citizen (an anonymous request first for the app to open its link)
    SIGNED = "signed"    # the result waits to be fetched until it expires
    DENIED = "denied"    # the citizen said no
    REFUSED = "refused"  # closed unsigned: the citizen may not sign (not plus, not active), or the PDF could not be signed
    EXPIRED = "expired"  # shown, never stored: still pending once expires_at has passed


LIFECYCLE = RequestLifecycle(
    start=SigningStatus.PENDING,
    expired=SigningStatus.EXPIRED,
    transitions={
        SigningStatus.PENDING: frozenset({SigningStatus.SIGNED, SigningStatus.DENIED, SigningStatus.REFUSED}),
        SigningStatus.SIGNED: frozenset(),
        SigningStatus.DENIED: frozenset(),
        SigningStatus.REFUSED: frozenset(),
        SigningStatus.EXPIRED: frozenset(),
    },
)


def _prompt_details(doc: dict[str, Any]) -> dict[str, Any]:
    # The full SHA-256 is in the prompt, so the device's signature binds exactly this document (evidence.py);
    # the phone shows its start for people to compare.
    details = {"document_name": doc["document_name"], "kind": doc["kind"], "sha256": doc["sha256"],
               "sha256_start": doc["sha256"][:HASH_SHOWN]}
    if doc.get("pages"):
        details["pages"] = doc["pages"]
    if doc.get("appearance"):  # a visible signature: the citizen approves the page and the name the stamp shows
        details["stamp_page"] = doc["appearance"]["page"]
        if doc.get("stamp_name"):
            details["stamp_name"] = doc["stamp_name"]
    return details


SIGNING_REQUESTS = ConsentedRequests(
    service="signing", action="sign", approval_prefix="sign", app_link_prefix="harbourid://sign?request=",
    details=_prompt_details, lifecycle=LIFECYCLE, requests=REQUESTS, results=RESULTS,
)

# Shown on the citizen's phone: one line, no control characters (pydantic refuses lone surrogates itself).
DocumentName = Annotated[DisplayText, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Purpose = Annotated[DisplayText, Field(min_length=1, max_length=300)]


# A visible signature's box, in PDF points (1/72 inch): big enough for the stamp's three lines, at most a poster's page.
STAMP_MIN_WIDTH, STAMP_MIN_HEIGHT, STAMP_MAX_SIDE = 72.0, 24.0, 14_400.0
Coordinate = Annotated[float, Field(ge=-STAMP_MAX_SIDE, le=STAMP_MAX_SIDE, allow_inf_nan=False)]
StampName = Annotated[DisplayText, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]+$")]


class Appearance(BaseModel):
    """A visible signature on a PDF: the page, the box of the stamp on it, and the name it shows (the citizen sees
    and approves it; without one, the certificate's name). Checked against the PDF itself in the sandbox."""

    model_config = ConfigDict(extra="forbid")
    page: int = Field(ge=1, le=100_000, description="1-based page number")
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] = Field(
        description="[x1, y1, x2, y2]: lower-left and upper-right corners in PDF points from the page's origin (lower left)")
    name: StampName | None = Field(default=None, description="the signer's name the stamp shows (may be Chinese)")

    @model_validator(mode="after")
    def _sane_box(self) -> "Appearance":
        x1, y1, x2, y2 = self.box
        if not (STAMP_MIN_WIDTH <= x2 - x1 and STAMP_MIN_HEIGHT <= y2 - y1):
            raise ValueError(f"the box must be at least {STAMP_MIN_WIDTH:g} x {STAMP_MIN_HEIGHT:g} points, "
                             "with x1 < x2 and y1 < y2")
        return self

    def stored(self) -> dict[str, Any]:
        """The request's `appearance` field (the name is free text: stored encrypted, as `stamp_name`)."""
        return {"page": self.page, "box": list(self.box)}


class SignHashBody(BaseModel):
    __doc__ = """Sign a document the relying party keeps: its SHA-256 and the name the citizen will see."""

    model_config = ConfigDict(extra="forbid")
    document_name: DocumentName
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the document, hex")
    purpose: Purpose | None = None


class DocumentQuery(BaseModel):
    """The query of a PDF upload sent as application/pdf (multipart sends the same as form fields)."""

    model_config = ConfigDict(extra="forbid")
    document_name: DocumentName | None = None
    purpose: Purpose | None = None
    appearance: Json[Appearance] | None = None


class NewDocument(BaseModel):
    """What api.py hands over for either kind (the PDF already checked in the sandbox, parsing.check_upload)."""

    kind: Literal["cms", "pdf"]
    document_name: DocumentName
    sha256: str
    purpose: Purpose | None = None
    pages: int | None = None
    pdf: bytes | None = None
    appearance: Appearance | None = None

    @model_validator(mode="after")
    def _appearance_on_pdfs_only(self) -> "NewDocument":
        if self.appearance is not None and self.kind != "pdf":
            raise ValueError("an appearance is for PDFs only: a hash is signed as a detached CMS, which shows nothing")
        return self


class RequestCreated(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    status: Literal[SigningStatus.PENDING]
    kind: Literal["cms", "pdf"]
    expires_at: str
    app_link: str | None = None  # anonymous requests: the QR / app link for the citizen


class RequestStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    status: SigningStatus
    kind: Literal["cms", "pdf"]
    document_name: str
    sha256: str
    created_at: str
    expires_at: str
    signed_at: str | None = None
    certificate_serial: str | None = None
    sub: str | None = None  # the citizen's pairwise subject at this client, once signed
    error: str | None = None  # access_denied (declined), assurance-too-low, identity-not-active, unsignable-pdf


def _may_not_sign(citizen: dict[str, Any]) -> Refused | None:
    """Only an active `plus` identity gets a certificate bound to it: why this citizen may not sign, if they may not."""
    if citizen.get("assurance") != "plus":
        return AssuranceTooLow("only citizens with a plus identity (verified in person) can sign documents")
    if citizen.get("state") != "active":
        return IdentityNotActive("this identity is suspended, revoked or closed and cannot sign")
    return None


async def _sub(signing: Signing, session: AsyncClientSession | None, doc: dict[str, Any]) -> str | None:
    """The citizen's pairwise subject at the requesting client's sector: the only identifier that client gets."""
    if doc.get("sub"):
        return doc["sub"]
    if doc.get("account_id") is None:
        return None
    return await pairwise_subject(signing.db, doc["sector"], doc["account_id"], session=session)


async def _tell_client(signing: Signing, session: AsyncClientSession, doc: dict[str, Any], event_type: str, data: dict[str, Any],
                       status: SigningStatus, *, error: str | None = None) -> None:
    """The outcome to the relying party, in the outcome's transaction: a copy on its own topic if it subscribed
    (`agency_events`), its result callback if it registered a URL (`callback_urls`) — both from one read of the clients
    projection by `_id` — each with its pairwise `sub` only (the callback: ids and the status, as polling shows them)."""
    client = await signing.db[CLIENTS].find_one({"_id": doc["client_id"]}, {"agency_events": 1, "callback_urls": 1}, session=session)
    agency, callback = wants_agency_events(client), bool((client or {}).get("callback_urls"))
    if not (agency or callback):
        return
    sub = await _sub(signing, session, doc)
    if agency:
        await signing.publish(session, agency_topic(doc["client_id"]), event_type, doc["_id"], {"request_id": doc["_id"], "sub": sub, **data})
    if callback:
        await result_callbacks.record(signing.db, session, client, signing.clock.now(), event=event_type, request_id=doc["_id"],
                                      status=str(status), sub=sub, error=error)


async def _close(signing: Signing, session: AsyncClientSession, doc: dict[str, Any], reason: str,
                 status: SigningStatus = SigningStatus.REFUSED, *, decided_at: datetime | None = None, actor: str = "signing",
                 account_id: str | None = None) -> None:
    """Close the request unsigned (the citizen said no, or may not sign) and tell the relying party.

    `decided_at`: when the citizen decided, if they did (auth's record); otherwise now."""
    await SIGNING_REQUESTS.move(signing, session, doc, status, error=reason, decided_at=decided_at or signing.clock.now())
    await signing.db[DOCUMENTS].delete_one({"_id": doc["_id"]}, session=session)
    SIGNATURES.labels(doc["kind"], reason).inc()
    await _tell_client(signing, session, doc, "signature.refused", {"reason": reason}, status, error=reason)
    # The citizen's record: which request of whom went unsigned and why (the kind, never the document's name).
    if subject := account_id or doc.get("account_id"):
        await signing.audit(session, subject=subject, action="signature.refuse", actor=actor, outcome=str(status),
                            client_id=doc["client_id"], request_id=doc["_id"], kind=doc["kind"], reason=reason)


async def create(signing: Signing, caller: RelyingParty, new: NewDocument) -> RequestCreated:
    client = await SIGNING_REQUESTS.client(signing, caller.client_id)
    account_id = None
    if caller.sub is not None:
        account_id, citizen = await SIGNING_REQUESTS.citizen(signing, client, caller.sub, known_in=CITIZENS)
        if (refusal := _may_not_sign(citizen)) is not None:
            raise refusal

    async def store_document(session: AsyncClientSession, doc: dict[str, Any]) -> None:
        sealed = signing.cipher.seal_bytes(new.pdf or b"", record_id=doc["_id"], field="pdf")
        await signing.db[DOCUMENTS].insert_one({"_id": doc["_id"], "sealed": sealed,
                                                "expires_at": doc["expires_at"] + DOCUMENT_KEPT_AFTER_EXPIRY}, session=session)

    doc = await SIGNING_REQUESTS.create(
        signing, client=client, account_id=account_id,
        text={"document_name": new.document_name, "purpose": new.purpose or f"Sign {new.document_name}",
              **({"stamp_name": new.appearance.name} if new.appearance and new.appearance.name else {})},
        fields={"sector": client["sector"], "sub": caller.sub, "kind": new.kind, "sha256": new.sha256.lower(), "pages": new.pages,
                **({"appearance": new.appearance.stored()} if new.appearance else {})},
        also=store_document if new.pdf is not None else None)
    link = SIGNING_REQUESTS.app_link(doc)
    return RequestCreated(request_id=doc["_id"], status=SigningStatus.PENDING, kind=new.kind, expires_at=doc["expires_at"].isoformat(),
                          **({"app_link": link} if link else {}))


async def claim(signing: Signing, device: Device, request_id: str) -> Claimed:
    """The app opened an anonymous request's link: it becomes this citizen's request, if they may sign."""
    citizen = await signing.db[CITIZENS].find_one({"_id": device.account_id})

    async def refuse(session: AsyncClientSession, doc: dict[str, Any]) -> Refused | None:
        # Nothing changes while signing has not heard of the citizen, or not yet of their activation (a device token
        # is only issued to an activated phone, so "pending" here is signing behind auth's events, not a refusal):
        # the app retries after Retry-After, and the request stays anyone's to open.
        if citizen is None or citizen.get("state") == "pending":
            raise SIGNING_REQUESTS.citizen_unknown()
        refusal = _may_not_sign(citizen)
        if refusal is not None:
            await _close(signing, session, doc, refusal.slug, actor=device.device_id, account_id=device.account_id)
        return refusal

    return await SIGNING_REQUESTS.claim(signing, request_id, device.account_id, refuse=refuse)


async def on_decided(signing: Signing, session: AsyncClientSession, data: dict[str, Any], *, published_at: datetime) -> None:
    """approval.decided for one of our prompts, verified against the prompt we built and judged at the time the
    citizen decided (not now: the event may come late): sign or close.

    Who may sign is checked now, when the signature is made (a citizen suspended since deciding signs nothing).
    """
    decided = await SIGNING_REQUESTS.decided(signing, session, data, published_at=published_at)
    if decided is None:
        await _refuse_if_not_what_was_approved(signing, session, data, published_at=published_at)
        return
    doc = decided.request
    if not decided.approved:
        await _close(signing, session, doc, "denied", SigningStatus.DENIED, decided_at=decided.decided_at,
                     actor=data.get("device_id", "signing"))
        return
    citizen = await signing.db[CITIZENS].find_one({"_id": doc["account_id"]}, session=session)
    refusal = SIGNING_REQUESTS.citizen_unknown() if citizen is None else _may_not_sign(citizen)
    if refusal is not None:
        await _close(signing, session, doc, refusal.slug, decided_at=decided.decided_at)
        return
    await _sign(signing, session, decided, data)


async def _refuse_if_not_what_was_approved(signing: Signing, session: AsyncClientSession, data: dict[str, Any], *,
                                           published_at: datetime) -> None:
    """A decision the citizen's device signed for this request (auth checked it against the prompt it showed), but over
    another prompt than the one signing builds now: the stored request changed since (its hash altered). It can never
    be signed: close it refused (decision-mismatch). Other unusable decisions stay ignored, as before."""
    request_id = data["approval_id"].removeprefix(f"{SIGNING_REQUESTS.approval_prefix}-")
    doc = await signing.db[REQUESTS].find_one({"_id": request_id}, session=session)
    if doc is None or doc["status"] != SigningStatus.PENDING or doc["account_id"] != data["account_id"]:
        return
    doc = SIGNING_REQUESTS.with_text(signing, doc)
    approval = SIGNING_REQUESTS.approval(doc)
    try:
        verify_recorded_decision(data["decision_jws"], load_public_jwk(data["device_jwk"]), approval_id=approval.approval_id,
                                 digest=approval.digest(), expires_at=doc["expires_at"], decided_at=data.get("decided_at"),
                                 published_at=published_at, now=signing.clock.now())
    except DecisionRejected as exc:
        if exc.reason == "digest-mismatch":  # signed by the device, for this approval, at a sane time: over something else
            await _mismatch(signing, session, doc, data, str(exc))
    except ValueError:  # a key that is no P-256 JWK: not the citizen's decision
        return


async def _mismatch(signing: Signing, session: AsyncClientSession, doc: dict[str, Any], data: dict[str, Any], why: str) -> None:
    log.warning("decision does not cover what would be signed: refused before the HSM", request_id=doc["_id"], detail=why)
    await _close(signing, session, doc, DecisionMismatch.slug, actor=data.get("device_id", "signing"))


async def _certificate(signing: Signing, session: AsyncClientSession, account_id: str) -> dict[str, Any]:
    """The citizen's active certificate, issued (its key generated in the HSM) at their first signature."""
    cert_doc = await active_certificate(signing.db, account_id, session, now=signing.clock.now())
    if cert_doc is None:
        cert_doc = await issue_for_citizen(signing.authority, signing.db, session, account_id, now=signing.clock.now())
        await signing.publish(session, SIGNING, "certificate.issued", cert_doc["_id"],
                              {"serial": cert_doc["_id"], "account_id": account_id, "not_after": cert_doc["not_after"].isoformat()})
        await signing.audit(session, subject=account_id, action="certificate.issue", actor="signing", serial=cert_doc["_id"])
    return cert_doc


async def _sign(signing: Signing, session: AsyncClientSession, decided: Decided, data: dict[str, Any]) -> None:
    """The signature (CMS over the hash, or the signed PDF), stored for the relying party with its evidence, and the events.

    Before the HSM is asked anything (a key generated, a hash signed), the decision is checked over exactly the hash
    about to be signed (evidence.check): the relying party's hash, or the SHA-256 of the PDF as stored now."""
    # pyHanko loads with the first signature, not at start (docs/operations.md, idle RSS).
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign.general import SigningError

    from .signatures import citizen_signer, sign_digest, sign_pdf

    doc = decided.request
    request_id = doc["_id"]
    stored = None
    if doc["kind"] == "pdf":
        stored = await signing.db[DOCUMENTS].find_one({"_id": request_id}, session=session)
        if stored is None:
            # The decision came later than the PDF is kept (DOCUMENT_KEPT_AFTER_EXPIRY): nothing left to sign.
            log.warning("decision arrived after its document was deleted", request_id=request_id)
            return
    pdf = None if stored is None else signing.cipher.open_bytes(stored["sealed"], record_id=request_id, field="pdf")
    to_sign = doc["sha256"] if pdf is None else hashlib.sha256(pdf).hexdigest()
    approval = SIGNING_REQUESTS.approval(doc)
    try:
        claims = evidence.check(approval, data, to_sign_sha256=to_sign, decided_at=decided.decided_at)
    except evidence.EvidenceMismatch as exc:
        await _mismatch(signing, session, doc, data, str(exc))
        return
    checked_at = signing.clock.now()
    cert_doc = await _certificate(signing, session, doc["account_id"])
    certificate = x509.Certificate.load(bytes(cert_doc["certificate"]))
    signer = citizen_signer(signing.hsm, cert_doc["key_label"], certificate, signing.authority.chain)
    # B-LT/B-LTA: the CRLs and OCSP answers for the signer's chain and the TSA's, made in process (this transaction
    # may have just issued the certificate).
    validation = await validation_data(signing.authority, signing.db, certificate, now=signing.clock.now(), session=session)
    if pdf is None:
        body = await sign_digest(signer, signing.tsa, bytes.fromhex(to_sign), validation=validation)
    else:
        try:
            body = await sign_pdf(signer, signing.tsa, pdf, reason=doc["purpose"], signer_name=certificate.subject.native["common_name"],
                                  validation=validation, font=signing.settings.pdf_font,
                                  appearance={**doc["appearance"], "name": doc.get("stamp_name")} if doc.get("appearance") else None)
        except (PdfError, SigningError):
            # The upload passed the sandbox's checks but pyHanko cannot add a revision to it (or sign in it: a certified
            # PDF that allows no change): the input's fault, so tell the relying party and do not retry.
            await _close(signing, session, doc, UnsignablePdf.slug, decided_at=decided.decided_at)
            return
        await signing.db[DOCUMENTS].delete_one({"_id": request_id}, session=session)
    now = signing.clock.now().replace(microsecond=0)
    await signing.db[EVIDENCE].insert_one(evidence.record(
        signing.cipher, approval, data, claims, request_id=request_id, sha256=to_sign, decided_at=decided.decided_at,
        checked_at=checked_at, signature_value=evidence.signature_value(doc["kind"], body), certificate_serial=cert_doc["_id"],
        kind=doc["kind"], signed_length=None if pdf is None else len(pdf)), session=session)
    await SIGNING_REQUESTS.store_result(signing, session, request_id, signing.cipher.seal_bytes(body, record_id=request_id, field="body"),
                                        MEDIA_TYPES[doc["kind"]], sha256=hashlib.sha256(body).hexdigest())
    await SIGNING_REQUESTS.move(signing, session, doc, SigningStatus.SIGNED, decided_at=decided.decided_at, signed_at=now,
                                certificate_serial=cert_doc["_id"])
    SIGNATURES.labels(doc["kind"], "signed").inc()
    # No document name: the relying party has it by request id, and free text stays off the outbox and Kafka.
    await _tell_client(signing, session, doc, "signature.completed",
                       {"kind": doc["kind"], "sha256": doc["sha256"], "certificate_serial": cert_doc["_id"], "signed_at": now.isoformat()},
                       SigningStatus.SIGNED)
    await signing.audit(session, subject=doc["account_id"], action="signature.create", actor=data["device_id"],
                        client_id=doc["client_id"], request_id=request_id, kind=doc["kind"], serial=cert_doc["_id"])


async def status(signing: Signing, caller: RelyingParty, request_id: str, *, wait_s: float = 0) -> RequestStatus:
    """`wait_s`: held up to that long while the citizen has not answered (libs/held_requests.py)."""
    doc = await SIGNING_REQUESTS.own(signing, caller.client_id, request_id, wait_s=wait_s)
    view: dict[str, Any] = {
        "request_id": doc["_id"], "status": SIGNING_REQUESTS.status(signing, doc), "kind": doc["kind"],
        "document_name": doc["document_name"], "sha256": doc["sha256"], "created_at": doc["created_at"].isoformat(),
        "expires_at": doc["expires_at"].isoformat()}
    if doc["status"] == SigningStatus.SIGNED:
        view |= {"signed_at": doc["signed_at"].isoformat(), "certificate_serial": doc["certificate_serial"],
                 "sub": await _sub(signing, None, doc)}
    if doc["status"] == SigningStatus.DENIED:
        view["error"] = "access_denied"
    if doc["status"] == SigningStatus.REFUSED:
        view["error"] = doc["error"]
    return RequestStatus(**view)


async def take_result(signing: Signing, caller: RelyingParty, request_id: str, *, wait_s: float = 0) -> tuple[bytes, str]:
    """The signature (CMS) or the signed PDF: (bytes, media type). Readable until the result expires. `wait_s`: as
    for `status`."""
    doc = await SIGNING_REQUESTS.own(signing, caller.client_id, request_id, wait_s=wait_s)
    current = SIGNING_REQUESTS.status(signing, doc)
    if current == SigningStatus.DENIED:
        raise Declined("the citizen declined to sign")
    if current == SigningStatus.REFUSED:
        raise CLOSED_BECAUSE[doc["error"]]("this citizen cannot sign")
    taken = await SIGNING_REQUESTS.result(signing, doc, once=False)
    if taken is None:
        raise ResultExpired("the signed result has expired")
    sealed, media_type = taken
    return signing.cipher.open_bytes(sealed, record_id=request_id, field="body"), media_type


async def document_name(signing: Signing, request_id: str, account_id: str) -> str | None:
    """The name of a document this citizen was asked to sign, opened for their own data tracker; None once the request
    is gone (30 days) or was not theirs."""
    doc = await signing.db[REQUESTS].find_one({"_id": request_id, "account_id": account_id})
    if doc is None:
        return None
    return SIGNING_REQUESTS.with_text(signing, doc).get("document_name")

"""Form-fill requests: a relying party names fields, the citizen approves on the phone, the data is released once.

The life cycle (ask, claim by link, the verified decision, status, the
result) is libs/consented_requests; what is formfill's own is here: which
fields a client may ask for, and the release — a JWS signed by formfill (JWKS
at /v1/formfill/jwks), encrypted to the client's key when it registered one,
stored encrypted until it is read once or expires, and leaving a consent
receipt the citizen can list.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.consented_requests import Claimed, ConsentedRequests, Decided, Declined, RequestLifecycle
from libs.crypto import seal_jwt
from libs.events import agency_topic
from libs.projections import CLIENTS, pairwise_subject, wants_agency_events
from libs import result_callbacks
from libs.service.validation import DisplayText

from . import consents
from .callers import Device, RelyingParty
from .collections import REQUESTS, RESULTS, VAULT
from .context import Formfill
from .errors import FieldNotRegistered, ReleaseGone
from .provenance import released_claims
from .vault import FIELDS, read_released

DECISIONS = Counter(
    "harbour_formfill_decisions_total",
    "Citizens' answers to form-fill requests: released or denied.",
    ["outcome"],
)


class FormfillStatus(StrEnum):
    PENDING = "pending"    # waiting for the citizen (an anonymous request first for the app to open its link)
    APPROVED = "approved"  # released: the release waits to be read, once
    DENIED = "denied"      # the citizen said no
    EXPIRED = "expired"    # shown, never stored: still pending once expires_at has passed


LIFECYCLE = RequestLifecycle(
    start=FormfillStatus.PENDING,
    expired=FormfillStatus.EXPIRED,
    transitions={
        FormfillStatus.PENDING: frozenset({FormfillStatus.APPROVED, FormfillStatus.DENIED}),
        FormfillStatus.APPROVED: frozenset(),
        FormfillStatus.DENIED: frozenset(),
        FormfillStatus.EXPIRED: frozenset(),
    },
)


def _prompt_details(doc: dict[str, Any]) -> dict[str, Any]:
    return {"required": [f["name"] for f in doc["fields"] if f["required"]],
            "optional": [f["name"] for f in doc["fields"] if not f["required"]], "standing": doc["standing"]}


FORMFILL_REQUESTS = ConsentedRequests(
    service="formfill", action="formfill", approval_prefix="formfill", app_link_prefix="harbourid://formfill?request=",
    details=_prompt_details, lifecycle=LIFECYCLE, requests=REQUESTS, results=RESULTS,
)


class FieldWanted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="one of " + ", ".join(FIELDS))
    required: bool = True

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FIELDS:
            raise ValueError(f"unknown field; known fields: {', '.join(FIELDS)}")
        return value


class FormfillRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    fields: list[FieldWanted] = Field(min_length=1, max_length=len(FIELDS))
    purpose: DisplayText = Field(min_length=3, max_length=300)  # shown on the phone
    standing: bool = Field(default=False, description="a standing consent the citizen can later revoke")

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[FieldWanted]) -> list[FieldWanted]:
        if len({f.name for f in value}) != len(value):
            raise ValueError("each field at most once")
        return value


class RequestCreated(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    status: Literal[FormfillStatus.PENDING]
    expires_at: str
    app_link: str | None = None  # anonymous requests: the QR / app link for the citizen


class RequestStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    status: FormfillStatus
    purpose: str
    fields: list[FieldWanted]
    expires_at: str
    released_fields: list[str] | None = None
    receipt_id: str | None = None
    error: Literal["access_denied"] | None = None  # the citizen declined


async def create(formfill: Formfill, caller: RelyingParty, body: FormfillRequestBody) -> RequestCreated:
    client = await FORMFILL_REQUESTS.client(formfill, caller.client_id)
    not_registered = sorted({f.name for f in body.fields} - set(client.get("formfill_fields", [])))
    if not_registered:
        raise FieldNotRegistered(f"the client is not registered for: {', '.join(not_registered)}", fields=not_registered)
    account_id = None
    if caller.sub is not None:
        account_id, _ = await FORMFILL_REQUESTS.citizen(formfill, client, caller.sub, known_in=VAULT)
    doc = await FORMFILL_REQUESTS.create(
        formfill, client=client, account_id=account_id, text={"purpose": body.purpose},
        fields={"fields": [f.model_dump() for f in body.fields], "standing": body.standing})
    link = FORMFILL_REQUESTS.app_link(doc)
    return RequestCreated(request_id=doc["_id"], status=FormfillStatus.PENDING, expires_at=doc["expires_at"].isoformat(),
                          **({"app_link": link} if link else {}))


async def claim(formfill: Formfill, device: Device, request_id: str) -> Claimed:
    """The app opened an anonymous request's link: it becomes this citizen's request and a prompt is sent."""
    return await FORMFILL_REQUESTS.claim(formfill, request_id, device.account_id)


async def on_decided(formfill: Formfill, session: AsyncClientSession, data: dict[str, Any], *, published_at: datetime) -> None:
    """approval.decided for one of our prompts, verified against the prompt we built and judged at the time the
    citizen decided (not now: the event may come late): release or close."""
    decided = await FORMFILL_REQUESTS.decided(formfill, session, data, published_at=published_at)
    if decided is None:
        return
    if not decided.approved:
        DECISIONS.labels("denied").inc()
        await FORMFILL_REQUESTS.move(formfill, session, decided.request, FormfillStatus.DENIED, decided_at=decided.decided_at)
        await _call_back(formfill, session, decided.request, "formfill.denied", FormfillStatus.DENIED, error="access_denied")
        return
    vault = await formfill.db[VAULT].find_one({"_id": decided.request["account_id"]}, {"state": 1}, session=session)
    if vault is not None and vault.get("state") == "closed":
        # Approved, then the account closed before the decision reached us (another topic): its vault is shredded,
        # nothing is released (the relying party sees denied).
        DECISIONS.labels("denied").inc()
        await FORMFILL_REQUESTS.move(formfill, session, decided.request, FormfillStatus.DENIED, decided_at=decided.decided_at)
        await _call_back(formfill, session, decided.request, "formfill.denied", FormfillStatus.DENIED, error="access_denied")
        return
    DECISIONS.labels("released").inc()
    await _release(formfill, session, decided, device_id=data["device_id"])


def _released_fields(fields: list[dict[str, Any]], selection: list[str] | None) -> list[str]:
    """Every required field, and the optional ones the citizen kept (all of them when the prompt offered no choice)."""
    required = [f["name"] for f in fields if f["required"]]
    optional = [f["name"] for f in fields if not f["required"]]
    return required + (optional if selection is None else [name for name in optional if name in selection])


async def _release(formfill: Formfill, session: AsyncClientSession, decided: Decided, *, device_id: str) -> None:
    """The release (signed, and encrypted to the client's key if it has one), its receipt, and the events."""
    doc = decided.request
    request_id = doc["_id"]
    released = _released_fields(doc["fields"], decided.claims.selection)
    values, provenance = await read_released(formfill.db, formfill.cipher, doc["account_id"], released)
    client = await formfill.db[CLIENTS].find_one({"_id": doc["client_id"]}, session=session)
    sub = await pairwise_subject(formfill.db, client["sector"], doc["account_id"], session=session)
    receipt_id = f"rcpt-{secrets.token_urlsafe(12)}"
    now = formfill.clock.now()
    issued_at = int(now.timestamp())
    claims = {"aud": doc["client_id"], "iat": issued_at, "exp": issued_at + formfill.settings.result_ttl_s, "jti": receipt_id,
              "request_id": request_id, "purpose": doc["purpose"], **released_claims(values, provenance)}
    if sub is not None:
        claims["sub"] = sub
    token = await formfill.signer.sign(claims)
    media_type = "application/jwt"
    if client.get("encryption_jwk"):
        token = seal_jwt(token, client["encryption_jwk"])
        media_type = "application/jose"
    await FORMFILL_REQUESTS.store_result(formfill, session, request_id,
                                         formfill.cipher.encrypt_record({"token": token}, record_id=request_id), media_type)
    await consents.record_receipt(formfill, session, receipt_id, doc, released)
    await FORMFILL_REQUESTS.move(formfill, session, doc, FormfillStatus.APPROVED,
                                 decided_at=decided.decided_at, released_at=now, released_fields=released, receipt_id=receipt_id)
    await _call_back(formfill, session, doc, "formfill.release_ready", FormfillStatus.APPROVED, client=client, sub=sub)
    # No purpose: the relying party wrote it and has it by request id; free text stays off the outbox and Kafka.
    if wants_agency_events(client):  # its own topic only if it subscribed (the client was read above)
        await formfill.publish(session, agency_topic(doc["client_id"]), "consent.granted", receipt_id,
                               {"receipt_id": receipt_id, "request_id": request_id, "sub": sub, "fields": released,
                                "standing": doc["standing"]})
    # The citizen's record (their data tracker): to whom, which fields (names), for what purpose — the purpose as its
    # SHA-256 only (the receipt keeps the text, encrypted: the tracker shows it from there and this proves it).
    await formfill.audit(session, subject=doc["account_id"], action="formfill.release", actor=device_id,
                         client_id=doc["client_id"], receipt_id=receipt_id, request_id=request_id, fields=released,
                         standing=doc["standing"], purpose_sha256=hashlib.sha256(doc["purpose"].encode()).hexdigest())


async def _call_back(formfill: Formfill, session: AsyncClientSession, doc: dict[str, Any], event: str, status: FormfillStatus, *,
                     client: dict[str, Any] | None = None, sub: str | None = None, error: str | None = None) -> None:
    """The outcome's result callback (libs/result_callbacks), queued in its transaction when the client registered a URL:
    ids and the status only, as polling shows them."""
    if client is None:
        client = await formfill.db[CLIENTS].find_one({"_id": doc["client_id"]}, {"callback_urls": 1, "sector": 1}, session=session)
    if not (client or {}).get("callback_urls"):
        return
    if sub is None and doc.get("account_id"):
        sub = await pairwise_subject(formfill.db, client["sector"], doc["account_id"], session=session)
    await result_callbacks.record(formfill.db, session, client, formfill.clock.now(), event=event, request_id=doc["_id"],
                                  status=str(status), sub=sub, error=error)


async def status(formfill: Formfill, caller: RelyingParty, request_id: str, *, wait_s: float = 0) -> RequestStatus:
    """`wait_s`: held up to that long while the citizen has not answered (libs/held_requests.py)."""
    doc = await FORMFILL_REQUESTS.own(formfill, caller.client_id, request_id, wait_s=wait_s)
    view: dict[str, Any] = {"request_id": doc["_id"], "status": FORMFILL_REQUESTS.status(formfill, doc), "purpose": doc["purpose"],
                            "fields": doc["fields"], "expires_at": doc["expires_at"].isoformat()}
    if doc["status"] == FormfillStatus.APPROVED:
        view |= {"released_fields": doc["released_fields"], "receipt_id": doc["receipt_id"]}
    if doc["status"] == FormfillStatus.DENIED:
        view["error"] = "access_denied"
    return RequestStatus(**view)


async def take_result(formfill: Formfill, caller: RelyingParty, request_id: str, *, wait_s: float = 0) -> tuple[str, str]:
    """The release, once: (token, media type). Read again or never read in time: gone (410). `wait_s`: as for
    `status`."""
    doc = await FORMFILL_REQUESTS.own(formfill, caller.client_id, request_id, wait_s=wait_s)
    if FORMFILL_REQUESTS.status(formfill, doc) == FormfillStatus.DENIED:
        raise Declined("the citizen declined this request")
    taken = await FORMFILL_REQUESTS.result(formfill, doc, once=True)
    if taken is None:
        raise ReleaseGone("the result was already read or has expired")
    sealed, media_type = taken
    return formfill.cipher.decrypt_record(sealed, record_id=request_id)["token"], media_type

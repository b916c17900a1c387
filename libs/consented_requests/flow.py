"""The life cycle formfill and signing share: ask the citizen, claim by link, verify the decision, own, status, result.

Each service declares one `ConsentedRequests` (what its prompts say, its
statuses) and calls it with its context; what it does once the citizen has
decided (release fields, sign) stays in the service.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.approvals import ApprovalRequest, DecisionClaims, DecisionRejected, Requester, seal_prompt, verify_recorded_decision
from libs.clock import Clock
from libs.crypto import FieldCipher
from libs.errors import Refused
from libs.events.topics import APPROVAL_REQUESTED
from libs.held_requests import HeldRequests
from libs.projections import CLIENTS, account_of_subject
from libs.service.logging import get_logger
from libs.service.tracing import continuing, traceparent
from libs.tokens import load_public_jwk

from .lifecycle import RequestLifecycle, S
from .refusals import RETRY_SOON, CitizenUnknown, LinkUnusable, NotAnswered, RequestExpired, RequestNotFound, UnknownClient

T = TypeVar("T")
log = get_logger("harbour.consented_requests")


class ConsentContext(Protocol):
    """What the life cycle needs of a service's context (libs/backbone ServiceContext, plus the field cipher)."""

    # request_ttl_s, result_ttl_s, auth_sealing_jwk
    settings: Any
    db: AsyncDatabase
    cipher: FieldCipher
    clock: Clock
    # The requests held here for their citizen's answer (libs/held_requests.py); None: `wait` is not offered.
    answers: HeldRequests | None

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T: ...

    def at_commit(self, key: Any, callback: Callable[[], None]) -> None: ...

    async def publish(self, session: AsyncClientSession, topic: Any, event_type: str, subject: str | None,
                      data: dict[str, Any] | None = None) -> Any: ...


class Claimed(BaseModel):
    __doc__ = """The answer to the app that opened a request's link."""

    model_config = ConfigDict(extra="forbid")
    request_id: str
    approval_id: str
    client_name: str


@dataclass(frozen=True)
class Decided:
    """A decision verified against the prompt we built: the request (its free text opened), the citizen's claims,
    and when the citizen decided (auth's record, which the decision was judged at)."""

    request: dict[str, Any]
    claims: DecisionClaims
    decided_at: datetime

    @property
    def approved(self) -> bool:
        return self.claims.decision == "approve"


@dataclass(frozen=True)
class ConsentedRequests(Generic[S]):
    # Named on the prompt as the requester, and in refusals ("not known to formfill yet").
    service: str
    # The prompt's action ("formfill", "sign") and the approval ids' prefix ("formfill-…", "sign-…").
    action: str
    approval_prefix: str
    # Where the citizen's app opens an anonymous request: this prefix and the request id.
    app_link_prefix: str
    # What the phone shows besides the purpose (field names, a document name and hash prefix...).
    details: Callable[[dict[str, Any]], dict[str, Any]]
    lifecycle: RequestLifecycle[S]
    requests: str = "requests"
    results: str = "results"

    # -- the prompt ---------------------------------------------------------

    def approval_id(self, request_id: str) -> str:
        return f"{self.approval_prefix}-{request_id}"

    def approval(self, doc: dict[str, Any]) -> ApprovalRequest:
        """The prompt for a request (its free text opened); the citizen's device signs its digest."""
        return ApprovalRequest(
            approval_id=self.approval_id(doc["_id"]),
            account_id=doc["account_id"],
            action=self.action,
            requester=Requester(service=self.service, client_id=doc["client_id"], client_name=doc["client_name"]),
            purpose=doc["purpose"],
            details=self.details(doc),
            expires_at=doc["expires_at"],
        )

    async def ask_citizen(self, ctx: ConsentContext, session: AsyncClientSession, doc: dict[str, Any], *,
                          opened_in_app: bool = False) -> None:
        """Publish the prompt; `opened_in_app`: the citizen's app asked (the link's claim), so nothing need call them."""
        approval = self.approval(doc)
        # In the trace of the relying party's request, even when the phone's claim asks (linked to the claim).
        with continuing(doc.get("traceparent"), "approval requested", {"harbour.approval_id": approval.approval_id}):
            # The free text (purpose, field or document names) is sealed: for auth's eyes only.
            await ctx.publish(session, APPROVAL_REQUESTED, "approval.requested", approval.approval_id,
                              seal_prompt(approval, ctx.settings.auth_sealing_jwk, opened_in_app=opened_in_app))

    # -- the relying party's free text, encrypted at rest --------------------
    # It is about the citizen's business: personal data, stored only under the request's own data key.

    @staticmethod
    def _text_record(request_id: str) -> str:
        return f"request.{request_id}"

    def with_text(self, ctx: ConsentContext, doc: dict[str, Any]) -> dict[str, Any]:
        """The stored request with its free text opened (a request stored before encryption keeps it in the clear)."""
        if "text" not in doc:
            return doc
        return {**doc, **ctx.cipher.decrypt_record(doc["text"], record_id=self._text_record(doc["_id"]))}

    # -- 1. ask ---------------------------------------------------------------

    async def client(self, ctx: ConsentContext, client_id: str) -> dict[str, Any]:
        """The requesting client as this service knows it from clients.events."""
        client = await ctx.db[CLIENTS].find_one({"_id": client_id})
        if client is None:
            raise UnknownClient(f"this client is not known to {self.service} yet; retry shortly", headers=RETRY_SOON)
        return client

    async def citizen(self, ctx: ConsentContext, client: dict[str, Any], sub: str, *, known_in: str) -> tuple[str, dict[str, Any]]:
        """The account a logged-in relying party's `sub` names, and the service's record of it in `known_in`
        (both learnt from auth's events: until they have arrived, the citizen is unknown here)."""
        account_id = await account_of_subject(ctx.db, sub, client["sector"])
        citizen = await ctx.db[known_in].find_one({"_id": account_id}) if account_id is not None else None
        if account_id is None or citizen is None:
            raise self.citizen_unknown()
        return account_id, citizen

    def citizen_unknown(self) -> CitizenUnknown:
        return CitizenUnknown(f"this citizen is not known to {self.service} yet; retry shortly", headers=RETRY_SOON)

    async def create(
        self,
        ctx: ConsentContext,
        *,
        client: dict[str, Any],
        account_id: str | None,
        text: dict[str, str],
        fields: Mapping[str, Any],
        also: Callable[[AsyncClientSession, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Store a new request and, when the citizen is known (logged in), ask them now; the request, text opened.

        `text`: the relying party's free text (encrypted at rest); `fields`: the service's own; `also(session, doc)`:
        more to store in the same transaction (signing's PDF).
        """
        now = ctx.clock.now().replace(microsecond=0)
        request_id = secrets.token_urlsafe(16)
        stored = {
            "_id": request_id, "client_id": client["_id"], "client_name": client["name"], "account_id": account_id,
            **fields, "text": ctx.cipher.encrypt_record(text, record_id=self._text_record(request_id)),
            "status": self.lifecycle.start.value, "created_at": now,
            "expires_at": now + timedelta(seconds=ctx.settings.request_ttl_s),
            # The relying party's request begins the journey: the citizen's prompt and decision continue its trace.
            "traceparent": traceparent(),
        }
        doc = {**stored, **text}  # the prompt shows the text; only its encrypted form is stored

        async def work(session: AsyncClientSession) -> None:
            await ctx.db[self.requests].insert_one(stored, session=session)
            if also is not None:
                await also(session, doc)
            if account_id is not None:
                await self.ask_citizen(ctx, session, doc)

        await ctx.transaction(work)
        return doc

    def app_link(self, doc: dict[str, Any]) -> str | None:
        """For an anonymous request, the link (QR code) the citizen opens in the app."""
        return None if doc["account_id"] is not None else self.app_link_prefix + doc["_id"]

    # -- 2. claim -------------------------------------------------------------

    async def claim(
        self,
        ctx: ConsentContext,
        request_id: str,
        account_id: str,
        *,
        refuse: Callable[[AsyncClientSession, dict[str, Any]], Awaitable[Refused | None]] | None = None,
    ) -> Claimed:
        """The app opened an anonymous request's link: the request becomes this citizen's, and they are asked.

        `refuse(session, doc)`, the service's last word on this citizen, may close the request and return the
        refusal: it is raised once that closing has committed, so the relying party learns why the request ended.
        """
        now = ctx.clock.now()

        async def work(session: AsyncClientSession) -> tuple[dict[str, Any], Refused | None]:
            # Read by _id, checked here, claimed by _id (no findAndModify with conditions: the local database serves only
            # a filter that is `_id` alone from the `_id` index); a racing claim of the same request conflicts.
            doc = await ctx.db[self.requests].find_one({"_id": request_id}, session=session)
            if (doc is None or doc["status"] != self.lifecycle.start.value or doc["expires_at"] <= now
                    or doc.get("account_id") is not None):
                raise LinkUnusable("this request has expired or was opened by someone else")
            await ctx.db[self.requests].update_one({"_id": request_id}, {"$set": {"account_id": account_id}}, session=session)
            doc["account_id"] = account_id
            doc = self.with_text(ctx, doc)
            refusal = await refuse(session, doc) if refuse is not None else None
            if refusal is None:  # the app that claimed shows the prompt: no "approve on your phone" message
                await self.ask_citizen(ctx, session, doc, opened_in_app=True)
            return doc, refusal

        doc, refusal = await ctx.transaction(work)
        if refusal is not None:
            raise refusal
        return Claimed(request_id=request_id, approval_id=self.approval_id(request_id), client_name=doc["client_name"])

    # -- 3. decide ------------------------------------------------------------

    async def decided(self, ctx: ConsentContext, session: AsyncClientSession, data: dict[str, Any], *,
                      published_at: datetime) -> Decided | None:
        """approval.decided (published at `published_at`) for one of our prompts, verified by us: None when there is nothing to do.

        Nothing to do: the request is unknown, no longer waiting, another citizen's, or the decision is not over
        exactly the prompt we built (its digest), signed by the device key the event carries, at a time auth recorded
        before the prompt expired. That time, not this processing's, is what the decision is judged by
        (libs.approvals.verify_recorded_decision): a decision made in time completes its request however late its
        event arrives.
        """
        request_id = data["approval_id"].removeprefix(f"{self.approval_prefix}-")
        doc = await ctx.db[self.requests].find_one({"_id": request_id}, session=session)
        if doc is None or doc["status"] != self.lifecycle.start or doc["account_id"] != data["account_id"]:
            return None
        doc = self.with_text(ctx, doc)
        approval = self.approval(doc)
        try:
            claims, decided_at = verify_recorded_decision(
                data["decision_jws"], load_public_jwk(data["device_jwk"]), approval_id=approval.approval_id,
                digest=approval.digest(), expires_at=doc["expires_at"], decided_at=data.get("decided_at"),
                published_at=published_at, now=ctx.clock.now())
        except DecisionRejected as exc:
            log.warning("decision refused", service=self.service, approval_id=approval.approval_id, reason=exc.reason,
                        detail=str(exc))
            return None
        return Decided(doc, claims, decided_at)

    async def move(self, ctx: ConsentContext, session: AsyncClientSession, doc: dict[str, Any], to: S, **fields: Any) -> None:
        """Move a request to `to` (an allowed transition), with the fields that go with it."""
        self.lifecycle.check(doc["status"], to)
        await ctx.db[self.requests].update_one({"_id": doc["_id"], "status": doc["status"]},
                                               {"$set": {"status": to.value, **fields}}, session=session)
        if (answers := ctx.answers) is not None:
            # The relying party's requests held here for this answer read it as soon as it is committed (at once when
            # there is no transaction to wait for).
            ctx.at_commit(("answered", self.requests, doc["_id"]), lambda: answers.answered_here(doc["_id"]))

    async def store_result(self, ctx: ConsentContext, session: AsyncClientSession, request_id: str,
                           sealed: dict[str, Any], media_type: str, **extra: Any) -> None:
        """The result, sealed by the service (record id = the request id), waiting for the relying party until result_ttl_s passes."""
        await ctx.db[self.results].insert_one(
            {"_id": request_id, "sealed": sealed, "media_type": media_type,
             **extra, "expires_at": ctx.clock.now().replace(microsecond=0) + timedelta(seconds=ctx.settings.result_ttl_s)},
            session=session)

    # -- 4. status ------------------------------------------------------------

    async def own(self, ctx: ConsentContext, client_id: str, request_id: str, *, wait_s: float = 0) -> dict[str, Any]:
        """The client's own request, its free text opened; another client's is not found.

        `wait_s`: while the request still waits for its citizen, hold the caller up to that long (never past the
        request's expiry) until it does not (libs/held_requests.py); then the request as it is."""
        answers = ctx.answers
        if wait_s <= 0 or answers is None:
            return await self._own(ctx, client_id, request_id)

        def holdable_s(doc: dict[str, Any]) -> float:  # while it waits for its citizen, never past its expiry
            if self.status(ctx, doc) != self.lifecycle.start:
                return 0.0
            return (doc["expires_at"] - ctx.clock.now()).total_seconds()

        return await answers.hold(request_id, client_id, wait_s, lambda: self._own(ctx, client_id, request_id), holdable_s)

    async def _own(self, ctx: ConsentContext, client_id: str, request_id: str) -> dict[str, Any]:
        doc = await ctx.db[self.requests].find_one({"_id": request_id, "client_id": client_id})
        if doc is None:
            raise RequestNotFound("no such request for this client")
        return self.with_text(ctx, doc)

    def status(self, ctx: ConsentContext, doc: dict[str, Any]) -> S:
        return self.lifecycle.current(doc["status"], doc["expires_at"], ctx.clock.now())

    # -- 5. result ------------------------------------------------------------

    async def result(self, ctx: ConsentContext, doc: dict[str, Any], *, once: bool) -> tuple[dict[str, Any], str] | None:
        """The result's sealed record (for the service to open) and media type; None once it has expired (or, `once`, was already taken).

        A request still waiting, or expired unanswered, is refused; the service refuses its own closed statuses first.
        """
        status = self.status(ctx, doc)
        if status == self.lifecycle.start:
            raise NotAnswered("the citizen has not answered yet", headers=RETRY_SOON)
        if status == self.lifecycle.expired:
            raise RequestExpired("the request expired without an answer")
        now = ctx.clock.now()
        # By _id alone, the expiry checked here (the TTL sweep removes it only later): a filter with anything beside
        # `_id` is served from no index on the local database.
        if not once:
            result = await ctx.db[self.results].find_one({"_id": doc["_id"]})
            return (result["sealed"], result["media_type"]) if result is not None and result["expires_at"] > now else None

        async def take(session: AsyncClientSession) -> dict[str, Any] | None:
            result = await ctx.db[self.results].find_one({"_id": doc["_id"]}, session=session)
            if result is None or result["expires_at"] <= now:
                return None
            # Deleted by _id in the transaction that read it: a second reader racing this one conflicts, and finds it gone.
            await ctx.db[self.results].delete_one({"_id": doc["_id"]}, session=session)
            await ctx.db[self.requests].update_one({"_id": doc["_id"]}, {"$set": {"result_read_at": now}}, session=session)
            return result

        result = await ctx.transaction(take)
        if result is None:
            return None
        return result["sealed"], result["media_type"]

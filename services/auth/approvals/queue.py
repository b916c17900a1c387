"""The citizens' encrypted approval queue: one document per approval request, whoever asked for it.

Prompts arrive as `approval.requested` from the service that needs consent
(auth queues its own login prompts directly). The relying party's free text
(purpose, details: document names, field names, binding messages) is stored
only under auth's field cipher (libs/approvals/confidential.py). It is opened
to show the prompt to the citizen's device and to check a decision's digest,
which is always recomputed from the plaintext request (never stored beside
it), so the phone signs what it showed and the requester's own digest still
matches.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs.approvals import ApprovalRequest, PromptUnreadable, decrypt_prompt, encrypt_prompt, unseal_prompt
from libs.crypto import FieldCipher
from libs.events import CloudEvent
from libs.service.logging import get_logger
from libs.service.tracing import traceparent

from ..collections import ACCOUNTS, APPROVALS
from ..remembered import Remembered
from ..errors import ApprovalUnreadable, NoSuchApproval

if TYPE_CHECKING:
    from ..context import Auth

log = get_logger("harbour.auth.approvals")


async def enqueue(
    auth: "Auth", session: AsyncClientSession | None, request: ApprovalRequest, *, journey: str | None = None
) -> None:
    """Add the prompt to its citizen's queue, its free text encrypted; the same approval id again changes nothing.

    `journey` is the trace context of the login or request the prompt belongs to (the current one by default):
    the citizen's decision continues that trace (decisions.py)."""
    stored = stored_prompt(auth, request, journey=journey)
    result = await auth.db[APPROVALS].update_one({"_id": request.approval_id}, {"$setOnInsert": stored}, upsert=True,
                                                 session=session)
    if result.upserted_id is not None:
        announce(auth, {"_id": request.approval_id, **stored})


# Prompts queued by this process, as stored, until decided here (or QUEUED_FOR_S): a pending prompt's document does
# not change until its decision, so the decision reads it from here (decisions.py) — one database operation less per
# login, form fill and signature. The decision's conditional update stays the authority: a prompt decided, expired or
# withdrawn meanwhile (here or in another replica) is refused all the same. At most QUEUED_LIMIT (each a few kB).
QUEUED_FOR_S = 120.0
QUEUED_LIMIT = 2_000
QUEUED = Remembered(limit=QUEUED_LIMIT)


def announce(auth: "Auth", doc: dict[str, Any]) -> None:
    """A prompt just queued, once it is committed (at once when it was written outside a transaction): to this
    process's open streams for its account, and remembered for its decision."""
    feed = auth.prompt_feed

    def queued() -> None:
        QUEUED.remember(auth.db.name, doc["_id"], doc, for_s=QUEUED_FOR_S)
        if feed is not None:
            feed.queued_here(doc)

    auth.at_commit(("prompt", doc["_id"]), queued)


def stored_prompt(auth: "Auth", request: ApprovalRequest, *, journey: str | None = None, **extra: Any) -> dict[str, Any]:
    """The queue's document of a prompt (without its `_id`): the free text encrypted, pending, `extra` beside it."""
    return {
        "account_id": request.account_id,
        **encrypt_prompt(auth.field_cipher, request),
        "status": "pending",
        "expires_at": request.expires_at,
        "received_at": auth.clock.now(),
        "traceparent": journey or traceparent(),
        **extra,
    }


async def insert_prompt(auth: "Auth", request: ApprovalRequest, *, session: AsyncClientSession | None = None,
                        journey: str | None = None, **extra: Any) -> dict[str, Any] | None:
    """Queue a prompt only if its approval id is new (one insert); None when it was queued before (outside a
    transaction: inside one, the duplicate aborts it)."""
    doc = {"_id": request.approval_id, **stored_prompt(auth, request, journey=journey, **extra)}
    try:
        await auth.db[APPROVALS].insert_one(doc, session=session)
    except DuplicateKeyError:
        return None
    announce(auth, doc)
    return doc


def opened(doc: dict[str, Any], cipher: FieldCipher) -> ApprovalRequest:
    """The whole plaintext request of a stored prompt; raises PromptUnreadable."""
    return decrypt_prompt(cipher, doc)


async def encrypt_stored_in_the_clear(db: AsyncDatabase, cipher: FieldCipher) -> int:
    """Start-up: prompts queued before their free text was encrypted get it encrypted in place."""
    count = 0
    async for doc in db[APPROVALS].find({"sealed": {"$exists": False}}):
        request = ApprovalRequest.model_validate(doc["request"])
        result = await db[APPROVALS].update_one(
            {"_id": doc["_id"], "sealed": {"$exists": False}},
            {"$set": encrypt_prompt(cipher, request), "$unset": {"digest": ""}},
        )
        count += result.modified_count
    return count


def request_of(doc: dict[str, Any], cipher: FieldCipher) -> ApprovalRequest:
    """The plaintext request of a stored prompt, or ApprovalUnreadable (410) when its key left the KEK ring."""
    try:
        return opened(doc, cipher)
    except PromptUnreadable:
        # The prompt cannot be shown, so it cannot be decided either.
        raise ApprovalUnreadable("this approval can no longer be shown; ask the service to send it again") from None


class UnknownAccount(ValueError):
    """A prompt for an account auth does not know: the event cannot be applied."""


async def store_prompt(auth: "Auth", session: AsyncClientSession, event: CloudEvent) -> None:
    """Handler of `approval.requested`: put the prompt in the citizen's queue (idempotent per approval id).

    The request arrives sealed to auth (only its clear part is readable on Kafka); an unsealed one is refused.
    """
    request = unseal_prompt(event.data, auth.settings.sealing_jwk)
    if await auth.db[ACCOUNTS].find_one({"_id": request.account_id}, {"_id": 1}, session=session) is None:
        raise UnknownAccount("approval requested for an unknown account")
    await enqueue(auth, session, request)


def prompt_view(doc: dict, now: datetime, cipher: FieldCipher) -> dict[str, Any]:
    status = doc["status"]
    if status == "pending" and now >= doc["expires_at"]:
        status = "expired"
    opened = request_of(doc, cipher)
    request = opened.model_dump(mode="json")
    view = {
        "approval_id": doc["_id"],
        "status": status,
        "action": request["action"],
        "requester": request["requester"],
        "purpose": request["purpose"],
        "details": request["details"],
        "matching_code": request.get("matching_code"),
        "expires_at": doc["expires_at"].isoformat(),
        "digest": opened.digest(),
        # The app recomputes the digest from this, so it signs what it showed.
        "request": request,
    }
    if doc.get("decided_at"):
        view["decided_at"] = doc["decided_at"].isoformat()
    return view


async def pending_prompts(auth: "Auth", account_id: str) -> list[dict[str, Any]]:
    """The account's open prompts, soonest to expire first (at most 100)."""
    now = auth.clock.now()
    docs = await (
        auth.db[APPROVALS]
        .find({"account_id": account_id, "status": "pending", "expires_at": {"$gt": now}})
        .sort("expires_at", 1)
        .limit(100)
        .to_list()
    )
    views = []
    for doc in docs:
        try:
            views.append(prompt_view(doc, now, auth.field_cipher))
        except ApprovalUnreadable:
            log.warning("a pending prompt cannot be decrypted; left out", approval_id=doc["_id"])
    return views


async def get_prompt(auth: "Auth", account_id: str, approval_id: str) -> dict[str, Any]:
    doc = await auth.db[APPROVALS].find_one({"_id": approval_id, "account_id": account_id})
    if doc is None:
        raise NoSuchApproval("no such approval for this account")
    return prompt_view(doc, auth.clock.now(), auth.field_cipher)

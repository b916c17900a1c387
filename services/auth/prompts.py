"""The citizens' prompt queue: one document per approval request, whoever asked for it.

The relying party's free text (purpose, details: document names, field names,
binding messages) is stored only under auth's field cipher
(libs/approvals/confidential.py). It is opened to show the prompt to the
citizen's device and to check a decision's digest, which is always recomputed
from the plaintext request (never stored beside it), so the phone signs what
it showed and the requester's own digest still matches.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.approvals import ApprovalRequest, decrypt_prompt, encrypt_prompt
from libs.crypto import FieldCipher

from .store import APPROVALS


async def enqueue(db: AsyncDatabase, session: AsyncClientSession | None, request: ApprovalRequest, cipher: FieldCipher) -> None:
    """Add the prompt to its citizen's queue, its free text encrypted; the same approval id again changes nothing."""
    await db[APPROVALS].update_one(
        {"_id": request.approval_id},
        {
            "$setOnInsert": {
                "account_id": request.account_id,
                **encrypt_prompt(cipher, request),
                "status": "pending",
                "expires_at": request.expires_at,
                "received_at": datetime.now(UTC),
            }
        },
        upsert=True,
        session=session,
    )


def opened(doc: dict[str, Any], cipher: FieldCipher) -> ApprovalRequest:
    """The whole plaintext request of a stored prompt; raises PromptUnreadable."""
    return decrypt_prompt(cipher, doc)


def open_request(doc: dict[str, Any], cipher: FieldCipher) -> dict[str, Any]:
    """The same, in JSON form (what the app is shown and recomputes the digest from)."""
    return opened(doc, cipher).model_dump(mode="json")


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

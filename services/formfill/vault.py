"""The personal-data vault: each field encrypted on its own under a per-record data key (libs/crypto).

Profiles arrive sealed in `identity.enrolled`; they are unsealed in memory,
re-encrypted for storage, and never written or logged in the clear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto import FieldCipher

if TYPE_CHECKING:
    from libs.backbone import ServiceContext

from .collections import CONSENT_CALLBACKS, CONSENTS, REQUESTS, RESULTS, VAULT

# The audit records' subject of the key-encryption key's rotation (`keys.rewrap`).
KEK_SUBJECT = "formfill-kek"

FIELDS = ("id_number", "name_en", "name_zh", "date_of_birth", "gender", "phone", "email", "address")


async def store_profile(
    db: AsyncDatabase, session: AsyncClientSession, cipher: FieldCipher, account_id: str, profile: dict[str, Any], *,
    now: datetime, **facts: Any
) -> None:
    fields = {name: profile.get(name) for name in FIELDS}
    await db[VAULT].update_one(
        {"_id": account_id},
        {"$set": {"sealed": cipher.encrypt_record(fields, record_id=account_id), "updated_at": now, **facts}},
        upsert=True,
        session=session,
    )


async def read_fields(db: AsyncDatabase, cipher: FieldCipher, account_id: str, names: list[str]) -> dict[str, str]:
    doc = await db[VAULT].find_one({"_id": account_id})
    if doc is None:
        return {}
    opened = cipher.decrypt_record(doc["sealed"], record_id=account_id)
    return {name: opened[name] for name in names if name in opened}


# How each field came to be known (kept beside the sealed record, never a value): `in_person` (the identity card and
# the citizen at a kiosk), `one_time_code` (a code sent to the new phone or e-mail was entered in the app: `channel`)
# or `self_declared` (typed by the citizen, unchecked), each with its `time` (docs/architecture.md, provenance).
CARD_FIELDS = ("id_number", "name_en", "name_zh", "date_of_birth", "gender")


def enrolled_provenance(assurance: str, at: datetime) -> dict[str, dict[str, str]]:
    """A kiosk enrolment (plus) proofed the card's fields in person; the phone, e-mail and address the citizen gave
    there were checked by nobody (self-declared until a one-time code proves one). A sandbox self-registration
    (basic) is the citizen's word for all."""
    return {name: {"method": "in_person" if assurance == "plus" and name in CARD_FIELDS else "self_declared",
                   "time": at.isoformat()} for name in FIELDS}


def provenance_of(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The record's provenance; a record stored before provenance was kept reads as its enrolment's."""
    kept = doc.get("provenance") or {}
    fallback = enrolled_provenance(doc.get("assurance", "basic"), doc.get("updated_at") or datetime(1970, 1, 1, tzinfo=UTC))
    return {name: kept.get(name) or fallback[name] for name in FIELDS}


async def read_released(db: AsyncDatabase, cipher: FieldCipher, account_id: str,
                        names: list[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The values of `names` and how each was verified (only those the vault holds)."""
    doc = await db[VAULT].find_one({"_id": account_id})
    if doc is None or "sealed" not in doc:
        return {}, {}
    opened = cipher.decrypt_record(doc["sealed"], record_id=account_id)
    values = {name: opened[name] for name in names if name in opened}
    provenance = provenance_of(doc)
    return values, {name: provenance[name] for name in values}


async def update_fields(db: AsyncDatabase, session: AsyncClientSession, cipher: FieldCipher, account_id: str,
                        values: dict[str, str], verification: dict[str, str], *, now: datetime) -> bool:
    """The citizen changed some fields (identity.profile_updated): re-encrypted with the rest, their provenance set.
    False when there is no open record (unknown, or closed and shredded): nothing is written."""
    doc = await db[VAULT].find_one({"_id": account_id}, session=session)
    if doc is None or "sealed" not in doc or doc.get("state") == "closed":
        return False
    opened = cipher.decrypt_record(doc["sealed"], record_id=account_id)
    changed = {name: value for name, value in values.items() if name in FIELDS}
    provenance = provenance_of(doc) | {name: dict(verification) for name in changed}
    await db[VAULT].update_one({"_id": account_id}, {"$set": {
        "sealed": cipher.encrypt_record(opened | changed, record_id=account_id), "provenance": provenance,
        "updated_at": now}}, session=session)
    return True


async def proofed_in_person(db: AsyncDatabase, session: AsyncClientSession, account_id: str, at: datetime) -> None:
    """A kiosk upgrade (basic to plus) checked the card-printed fields in person: their provenance says so."""
    doc = await db[VAULT].find_one({"_id": account_id}, {"provenance": 1, "assurance": 1, "updated_at": 1}, session=session)
    if doc is None:
        return
    provenance = provenance_of(doc) | {name: {"method": "in_person", "time": at.isoformat()} for name in CARD_FIELDS}
    await db[VAULT].update_one({"_id": account_id}, {"$set": {"provenance": provenance}}, session=session)


async def shred(db: AsyncDatabase, session: AsyncClientSession, account_id: str, *, now: datetime) -> dict[str, int]:
    """An account closed (identity.state_changed to `closed`): crypto-shredding, inside the event's transaction.

    The vault record loses its sealed form, wrapped data key and field ciphertexts together: nothing that a
    KEK could open remains (a backup taken before still holds the old ciphertexts: docs/privacy.md). The
    releases waiting to be read go too; the receipts are revoked and lose their purpose text, keeping which
    fields went to whom and when (names only, never values) for audit. Form-fill requests keep their status.
    """
    vault = await db[VAULT].update_one({"_id": account_id}, {"$unset": {"sealed": ""},
                                                             "$set": {"state": "closed", "shredded_at": now}}, session=session)
    request_ids = [doc["_id"] for doc in await db[REQUESTS].find({"account_id": account_id}, {"_id": 1}, session=session).to_list()]
    results = (await db[RESULTS].delete_many({"_id": {"$in": request_ids}}, session=session)).deleted_count if request_ids else 0
    await db[CONSENT_CALLBACKS].delete_many({"account_id": account_id}, session=session)  # standing consents' updates
    await db[CONSENTS].update_many({"account_id": account_id, "revoked_at": None}, {"$set": {"revoked_at": now}}, session=session)
    receipts = await db[CONSENTS].update_many(
        {"account_id": account_id},
        {"$set": {"status": "revoked", "revoked_reason": "account closed"}, "$unset": {"text": "", "purpose": ""}},
        session=session)
    return {"vault_records": vault.modified_count, "results": results, "receipts": receipts.modified_count}


# Everything formfill encrypts under the KEK ring: (collection, field holding the sealed record, its record id).
SEALED = (
    (VAULT, "sealed", lambda doc: doc["_id"]),
    (RESULTS, "sealed", lambda doc: doc["_id"]),
    (REQUESTS, "text", lambda doc: f"request.{doc['_id']}"),   # the relying party's purpose
    (CONSENTS, "text", lambda doc: f"consent.{doc['_id']}"),   # the purpose on the citizen's receipt
)


REWRAP_BATCH = 100  # records re-wrapped per transaction, with their audit record


async def rewrap_all(db: AsyncDatabase, cipher: FieldCipher, ctx: "ServiceContext | None" = None, *, actor: str = "formfill",
                     reason: str | None = None) -> dict[str, int]:
    """Key rotation: every record's data key re-wrapped under the current KEK (fields untouched).

    With `ctx` (the operator command's), each batch of records moves in one transaction with its audit record
    `keys.rewrap` (the operator, the reason, how many of which collection); a run with nothing to move records that."""
    current = cipher.current_kid
    moved = remaining = 0

    async def move(collection: str, field: str, record_id, docs: list[dict[str, Any]]) -> None:
        async def work(session: AsyncClientSession | None) -> None:
            for doc in docs:
                rewrapped = cipher.rewrap(doc[field], record_id=record_id(doc))
                await db[collection].update_one({"_id": doc["_id"], f"{field}.kid": doc[field]["kid"]}, {"$set": {field: rewrapped}},
                                                session=session)
            if ctx is not None:
                await ctx.audit(session, subject=KEK_SUBJECT, action="keys.rewrap", actor=actor, reason=reason,
                                collection=collection, rewrapped=len(docs), current_kid=current)

        await (ctx.transaction(work) if ctx is not None else work(None))

    for collection, field, record_id in SEALED:
        old = {f"{field}.kid": {"$exists": True, "$ne": current}}
        batch: list[dict[str, Any]] = []
        async for doc in db[collection].find(old):
            batch.append(doc)
            if len(batch) == REWRAP_BATCH:
                await move(collection, field, record_id, batch)
                moved, batch = moved + len(batch), []
        if batch:
            await move(collection, field, record_id, batch)
            moved += len(batch)
        remaining += await db[collection].count_documents(old)
    if ctx is not None and moved == 0:
        await ctx.transaction(lambda session: ctx.audit(session, subject=KEK_SUBJECT, action="keys.rewrap", actor=actor,
                                                        reason=reason, rewrapped=0, current_kid=current))
    return {"rewrapped": moved, "left_on_old_keys": remaining, "current_kid": current}

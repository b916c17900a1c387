"""The personal-data vault: each field encrypted on its own under a per-record data key (libs/crypto).

Profiles arrive sealed in `identity.enrolled`; they are unsealed in memory,
re-encrypted for storage, and never written or logged in the clear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto import FieldCipher

from .store import VAULT

FIELDS = ("id_number", "name_en", "name_zh", "date_of_birth", "gender", "phone", "email", "address")
CONTACT_FIELDS = ("phone", "email", "address")


async def store_profile(
    db: AsyncDatabase, session: AsyncClientSession, cipher: FieldCipher, account_id: str, profile: dict[str, Any], **facts: Any
) -> None:
    fields = {name: profile.get(name) for name in FIELDS}
    await db[VAULT].update_one(
        {"_id": account_id},
        {"$set": {"sealed": cipher.encrypt_record(fields, record_id=account_id), "updated_at": datetime.now(UTC), **facts}},
        upsert=True,
        session=session,
    )


async def read_fields(db: AsyncDatabase, cipher: FieldCipher, account_id: str, names: list[str]) -> dict[str, str]:
    doc = await db[VAULT].find_one({"_id": account_id})
    if doc is None:
        return {}
    opened = cipher.decrypt_record(doc["sealed"], record_id=account_id)
    return {name: opened[name] for name in names if name in opened}


async def update_contact(db: AsyncDatabase, session: AsyncClientSession, cipher: FieldCipher, account_id: str, changes: dict[str, str]) -> None:
    doc = await db[VAULT].find_one({"_id": account_id}, session=session)
    if doc is None:
        raise LookupError("no profile for this account yet")
    opened = cipher.decrypt_record(doc["sealed"], record_id=account_id)
    opened.update({k: v for k, v in changes.items() if k in CONTACT_FIELDS})
    await store_profile(db, session, cipher, account_id, opened)


async def rewrap_all(db: AsyncDatabase, cipher: FieldCipher) -> dict[str, int]:
    """Key rotation: every record's data key re-wrapped under the current KEK (fields untouched)."""
    current = cipher.current_kid
    moved = 0
    async for doc in db[VAULT].find({"sealed.kid": {"$ne": current}}):
        rewrapped = cipher.rewrap(doc["sealed"], record_id=doc["_id"])
        await db[VAULT].update_one({"_id": doc["_id"], "sealed.kid": doc["sealed"]["kid"]}, {"$set": {"sealed": rewrapped}})
        moved += 1
    remaining = await db[VAULT].count_documents({"sealed.kid": {"$ne": current}})
    return {"rewrapped": moved, "left_on_old_keys": remaining, "current_kid": current}

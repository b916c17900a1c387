"""An account closed (identity.state_changed to `closed`): what notify held for the citizen goes, in the event's transaction.

Deleted: the inbox, the preferences (with the e-mail address and phone number
sealed in them), pushes waiting or recorded, and e-mails and SMS waiting for
their provider. The agencies' notifications stay as their delivery records
(status, sub, template, times) but lose their sealed personalisation: nothing
left opens to what was sent. The account's projection keeps only `closed`, so
a later message for one of its subjects is refused as for an unknown citizen
(docs/privacy.md).
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from .collections import CHANNEL_MESSAGES, INBOX, NOTIFICATIONS, PREFERENCES, PUSH_LOG, PUSHES


async def forget_account(db: AsyncDatabase, session: AsyncClientSession, account_id: str, *, now: datetime) -> dict[str, int]:
    """Delete and shred the account's messages and preferences; the counts, for the audit record."""
    notification_ids = [doc["_id"] for doc in await db[NOTIFICATIONS].find(
        {"account_id": account_id}, {"_id": 1}, session=session).to_list()]
    counts = {
        "inbox": (await db[INBOX].delete_many({"account_id": account_id}, session=session)).deleted_count,
        "preferences": (await db[PREFERENCES].delete_many({"_id": account_id}, session=session)).deleted_count,
        "pushes": (await db[PUSHES].delete_many({"account_id": account_id}, session=session)).deleted_count
        + (await db[PUSH_LOG].delete_many({"account_id": account_id}, session=session)).deleted_count,
        "channel_messages": (await db[CHANNEL_MESSAGES].delete_many(
            {"notification_id": {"$in": notification_ids}}, session=session)).deleted_count if notification_ids else 0,
    }
    # One-time codes for a changed phone or e-mail (contact_codes.py) have no notification: found by account.
    counts["channel_messages"] += (await db[CHANNEL_MESSAGES].delete_many({"account_id": account_id}, session=session)).deleted_count
    shredded = await db[NOTIFICATIONS].update_many({"account_id": account_id, "sealed": {"$exists": True}},
                                                   {"$unset": {"sealed": ""}, "$set": {"shredded_at": now}}, session=session)
    counts["notifications_shredded"] = shredded.modified_count
    return counts

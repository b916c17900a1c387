"""notify's part of the citizen's personal-data export (libs/data_export.py): the inbox (every message opened),
the preferences with the contact details opened, and the notifications addressed to them (status and timeline;
their content is the inbox's).

Signed with notify's callback keys (JWKS at /v1/notifications/jwks), typ harbour-export+jwt.
"""

from __future__ import annotations

from libs.data_export import ExportPart, plain, signed_part, without

from . import inbox, preferences
from .callers import Citizen
from .collections import ACCOUNTS, INBOX, NOTIFICATIONS
from .context import Notify


async def export(notify: Notify, citizen: Citizen) -> ExportPart:
    db, account_id = notify.db, citizen.account_id
    messages = [inbox.view(notify, doc).model_dump(by_alias=True)
                for doc in await db[INBOX].find({"account_id": account_id}).sort("delivered_at", 1).to_list()]
    prefs = (await preferences.show(db, notify.cipher, account_id)).model_dump(exclude_none=True)
    notifications = [plain(without(doc, "sealed", "personalisation", "account_id"))
                     for doc in await db[NOTIFICATIONS].find({"account_id": account_id}).sort("created_at", 1).to_list()]
    account = plain(without(await db[ACCOUNTS].find_one({"_id": account_id}), "_id"))
    data = {"account": account, "preferences": prefs, "inbox": messages, "notifications": notifications}
    return await signed_part(notify, notify.keys, "notify", citizen, data,
                             inbox_items=len(messages), notifications=len(notifications))

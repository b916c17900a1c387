"""Topics notify publishes and consumes (docs/events.md), and the API process's event handler.

The API process keeps the projections (who a sub is, an agency's name and
sector, a citizen's language and state) and turns platform events into
high-priority messages. The dispatcher process consumes the dispatch topics
(dispatcher.py).
"""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import CloudEvent
from libs.events.consumer import wants_only
from libs.events.topics import APPROVAL_REQUESTED, AUDIT, CLIENTS, IDENTITY, NOTIFICATIONS, NOTIFICATIONS_PRIORITY
from libs.projections import CLIENT_CHANGED, SUBJECT_ASSIGNED, record_client, record_subject

from . import closure, contact_codes, platform_messages
from .context import Notify
from .collections import ACCOUNTS

# Created at start-up when the environment allows it (locally; Strimzi in production). notify writes audit records
# and reads none: the platform's audit trail is signing's ledger's to read (a new device's alert comes as
# `identity.device_activated`, not from auth's `device.activate` record, as it did until 2026-12-05).
TOPICS = (IDENTITY, CLIENTS, APPROVAL_REQUESTED, AUDIT, NOTIFICATIONS, NOTIFICATIONS_PRIORITY)
CONSUMED = (IDENTITY.name, CLIENTS.name, APPROVAL_REQUESTED.name)
CONSUMER_GROUP = "notify"


def handler(notify: Notify):
    async def handle(event: CloudEvent, session: AsyncClientSession) -> None:
        if not wants(event):  # what the consumer skips unrecorded, whoever hands it here
            return
        data = event.data
        db = notify.db
        if event.type == "identity.enrolled":
            await db[ACCOUNTS].update_one({"_id": data["account_id"]}, {"$set": {
                "language": data.get("language", "en"), "state": data.get("state", "pending")}}, upsert=True, session=session)
        elif event.type == "identity.state_changed":
            await db[ACCOUNTS].update_one({"_id": data["account_id"]}, {"$set": {"state": data["to"]}}, upsert=True, session=session)
            if data["to"] == "closed":  # inbox, preferences and contact details go (closure.py)
                forgotten = await closure.forget_account(db, session, data["account_id"], now=notify.clock.now())
                await notify.audit(session, subject=data["account_id"], action="notify.forget", actor="notify", **forgotten)
        elif event.type == "identity.devices_replaced":
            await platform_messages.on_devices_replaced(notify, session, data["account_id"], event.time,
                                                        int(data.get("devices_revoked", 0)),
                                                        sandbox=data.get("reason") == "recovered in the sandbox")
        elif event.type == "identity.device_activated":
            await platform_messages.on_device_activated(notify, session, data["account_id"], event.time)
        elif event.type == "identity.device_added":
            await platform_messages.on_device_added(notify, session, data["account_id"], event.time)
        elif event.type == "identity.assurance_changed":
            await platform_messages.on_assurance_upgraded(notify, session, data["account_id"], event.time)
        elif event.type == "identity.contact_verification":  # a changed phone / e-mail: its code to the new address
            await contact_codes.send_code(notify, session, data, event.time)
        elif event.type == "identity.profile_updated":
            await contact_codes.take_verified(notify, session, data, event.time)
        elif event.type == SUBJECT_ASSIGNED:
            await record_subject(db, session, data)
            await platform_messages.on_new_service(notify, session, data["account_id"], data["sector"])
        elif event.type in CLIENT_CHANGED:
            await record_client(db, session, data)
        elif event.type == "approval.requested":
            await platform_messages.on_approval_requested(notify, session, data)

    return wants_only(handle, wants)


HANDLED = frozenset({"identity.enrolled", "identity.state_changed", "identity.devices_replaced", "identity.device_activated",
                     "identity.device_added", "identity.assurance_changed", "identity.contact_verification",
                     "identity.profile_updated", SUBJECT_ASSIGNED, "approval.requested"})


def wants(event: CloudEvent) -> bool:
    """The events handle acts on; skipped unrecorded: the prompts the citizen's app asked for itself (it already shows
    them), and any other event of these topics."""
    if event.type == "approval.requested":  # libs.approvals.opened_in_app, without loading the prompt's models here
        return event.data.get("opened_in_app") is not True
    return event.type in HANDLED or event.type in CLIENT_CHANGED

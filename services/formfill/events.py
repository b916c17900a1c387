"""Topics formfill publishes and consumes (docs/events.md), and its event handlers."""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.crypto import unseal
from libs.events import CloudEvent
from libs.events.topics import APPROVAL_DECIDED, APPROVAL_REQUESTED, AUDIT, CLIENTS, IDENTITY

from .context import Formfill
from .formfill_requests import on_decided
from .collections import CLIENTS as CLIENTS_COLLECTION
from .collections import SUBJECTS, VAULT
from .vault import store_profile

# Created at start-up when the environment allows it (locally; Strimzi in production).
TOPICS = (IDENTITY, CLIENTS, APPROVAL_REQUESTED, APPROVAL_DECIDED, AUDIT)
CONSUMED = (IDENTITY.name, CLIENTS.name, APPROVAL_DECIDED.name)
CONSUMER_GROUP = "formfill"


def handler(formfill: Formfill):
    async def handle(event: CloudEvent, session: AsyncClientSession) -> None:
        data = event.data
        db = formfill.db
        if event.type == "identity.enrolled":
            profile = unseal(data["sealed_profile"], formfill.settings.sealing_jwk)
            await store_profile(db, session, formfill.cipher, data["account_id"], profile,
                                assurance=data["assurance"], state=data["state"])
        elif event.type == "identity.state_changed":
            await db[VAULT].update_one({"_id": data["account_id"]}, {"$set": {"state": data["to"]}}, session=session)
        elif event.type == "identity.subject_assigned":
            await db[SUBJECTS].update_one({"_id": data["sub"]}, {"$set": {"sector": data["sector"], "account_id": data["account_id"]}},
                                          upsert=True, session=session)
        elif event.type in ("client.registered", "client.updated"):
            await db[CLIENTS_COLLECTION].update_one({"_id": data["client_id"]}, {"$set": {
                "name": data["client_name"], "kind": data["kind"], "sector": data["sector"],
                "formfill_fields": data.get("formfill_fields", []), "encryption_jwk": data.get("encryption_jwk"),
                "callback_urls": data.get("callback_urls", [])}}, upsert=True, session=session)
        elif event.type == "approval.decided" and data["requester"]["service"] == "formfill":
            await on_decided(formfill, session, data)

    return handle

"""Topics formfill publishes and consumes (docs/events.md), and its event handlers."""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.crypto import unseal
from libs.events import CloudEvent
from libs.consented_requests.events import decided_for, wanted_by
from libs.events.consumer import wants_only
from libs.events.topics import APPROVAL_DECIDED, APPROVAL_REQUESTED, AUDIT, CLIENTS, IDENTITY
from libs.projections import CLIENT_CHANGED, SUBJECT_ASSIGNED, record_client, record_subject

from .collections import VAULT
from .context import Formfill
from .formfill_requests import on_decided
from . import profile_updates
from .vault import enrolled_provenance, proofed_in_person, shred, store_profile

# Created at start-up when the environment allows it (locally; Strimzi in production).
TOPICS = (IDENTITY, CLIENTS, APPROVAL_REQUESTED, APPROVAL_DECIDED, AUDIT)
CONSUMED = (IDENTITY.name, CLIENTS.name, APPROVAL_DECIDED.name)
CONSUMER_GROUP = "formfill"
# What formfill keeps of a client besides its name, kind and sector, with the default for an event without it.
CLIENT_FIELDS = {"formfill_fields": [], "encryption_jwk": None, "callback_urls": []}


def handler(formfill: Formfill):
    async def handle(event: CloudEvent, session: AsyncClientSession) -> None:
        data = event.data
        db = formfill.db
        if event.type == "identity.enrolled":
            if await db[VAULT].find_one({"_id": data["account_id"], "state": "closed"}, {"_id": 1}, session=session):
                return  # the enrolment read again after the account closed (a replayed topic): it stays shredded
            profile = unseal(data["sealed_profile"], formfill.settings.sealing_jwk)
            await store_profile(db, session, formfill.cipher, data["account_id"], profile, now=formfill.clock.now(),
                                assurance=data["assurance"], state=data["state"],
                                provenance=enrolled_provenance(data["assurance"], event.time))
        elif event.type == "identity.profile_updated":  # the citizen changed a field from the app (profile_updates.py)
            await profile_updates.on_profile_updated(formfill, session, data)
        elif event.type == "identity.state_changed":
            await db[VAULT].update_one({"_id": data["account_id"]}, {"$set": {"state": data["to"]}}, session=session)
            if data["to"] == "closed":  # crypto-shredding (vault.shred); the audit record says what went, never what it was
                shredded = await shred(db, session, data["account_id"], now=formfill.clock.now())
                await formfill.audit(session, subject=data["account_id"], action="vault.shred", actor="formfill", **shredded)
        elif event.type == "identity.assurance_changed":
            await db[VAULT].update_one({"_id": data["account_id"]}, {"$set": {"assurance": data["to"]}}, session=session)
            if data["to"] == "plus":  # proofed in person at a kiosk: the card-printed fields say so from now on
                await proofed_in_person(db, session, data["account_id"], event.time)
        elif event.type == SUBJECT_ASSIGNED:
            await record_subject(db, session, data)
        elif event.type in CLIENT_CHANGED:
            await record_client(db, session, data, also=CLIENT_FIELDS)
        elif decided_for(event, "formfill"):
            await on_decided(formfill, session, data, published_at=event.time)

    return wants_only(handle, wants)


# The events handle acts on: others (another service's decisions, a login's) are skipped unrecorded.
_shared_wants = wanted_by("formfill")


def wants(event: CloudEvent) -> bool:
    """The shared projections' events and our decisions, and the citizen's own changes (profile_updates.py)."""
    return event.type == "identity.profile_updated" or _shared_wants(event)

"""Topics signing publishes and consumes (docs/events.md), and its event handlers."""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import CloudEvent
from libs.consented_requests.events import decided_for, wanted_by
from libs.events.consumer import wants_only
from libs.events.topics import APPROVAL_DECIDED, APPROVAL_REQUESTED, AUDIT, AUDIT_CHECKPOINTS, CLIENTS, IDENTITY, SIGNING
from libs.projections import CLIENT_CHANGED, SUBJECT_ASSIGNED, record_client, record_subject

from .authority import REVOCATION_REASONS, destroy_keys, revoke_for_account
from .collections import CITIZENS
from .context import Signing
from .signing_requests import on_decided

# Created at start-up when the environment allows it (locally; Strimzi in production).
TOPICS = (IDENTITY, CLIENTS, APPROVAL_REQUESTED, APPROVAL_DECIDED, AUDIT, AUDIT_CHECKPOINTS, SIGNING)
CONSUMED = (IDENTITY.name, CLIENTS.name, APPROVAL_DECIDED.name)
CONSUMER_GROUP = "signing"


def handler(signing: Signing):
    async def handle(event: CloudEvent, session: AsyncClientSession) -> None:
        data = event.data
        db = signing.db
        if event.type == "identity.enrolled":
            # Only what decides who may sign: no personal data reaches signing.
            await db[CITIZENS].update_one({"_id": data["account_id"]}, {"$set": {
                "assurance": data["assurance"], "state": data["state"]}}, upsert=True, session=session)
        elif event.type == "identity.state_changed":
            await db[CITIZENS].update_one({"_id": data["account_id"]}, {"$set": {"state": data["to"]}}, upsert=True, session=session)
            if data["to"] in REVOCATION_REASONS:
                await revoke_certificates(signing, session, data["account_id"], data["to"])
            if data["to"] == "closed":  # closed for good: the keys go too (the certificates stay, revoked)
                destroyed = await destroy_keys(signing.authority, db, session, data["account_id"], now=signing.clock.now())
                await signing.audit(session, subject=data["account_id"], action="certificate.keys_destroyed", actor="signing",
                                    keys=destroyed)
        elif event.type == "identity.assurance_changed":  # a basic identity proofed in person at a kiosk: it may sign
            await db[CITIZENS].update_one({"_id": data["account_id"]}, {"$set": {"assurance": data["to"]}}, upsert=True, session=session)
        elif event.type == SUBJECT_ASSIGNED:
            await record_subject(db, session, data)
        elif event.type in CLIENT_CHANGED:
            await record_client(db, session, data, also={"callback_urls": []})  # result callbacks (signing_requests.py)
        elif decided_for(event, "signing"):
            await on_decided(signing, session, data, published_at=event.time)

    return wants_only(handle, wants)


# The events handle acts on: others (another service's decisions, a login's) are skipped unrecorded.
wants = wanted_by("signing")


async def revoke_certificates(signing: Signing, session: AsyncClientSession, account_id: str, state: str) -> None:
    now = signing.clock.now().replace(microsecond=0)
    serials = await revoke_for_account(signing.db, session, account_id, state, now=now)
    for serial in serials:
        await signing.publish(session, SIGNING, "certificate.revoked", serial,
                              {"serial": serial, "account_id": account_id, "reason": REVOCATION_REASONS[state],
                               "revoked_at": now.isoformat()})
        await signing.audit(session, subject=account_id, action="certificate.revoke", actor="signing", serial=serial,
                            reason=REVOCATION_REASONS[state])

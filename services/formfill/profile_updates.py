"""The citizen changed a field from the app (identity.profile_updated): the vault, then every standing consent.

auth publishes the event once the change holds — a phone number or e-mail
address only after its one-time code was entered, an address at once
(self-declared) — with the new value sealed to formfill. In the event's
transaction:

1. the vault record is re-encrypted with the new value and the field's
   provenance (vault.update_fields);
2. each active standing consent of the citizen that covers a changed field
   gets an update: a token signed by formfill like a release (`typ`
   `consent-update+jwt`; claims `aud` the client, `iat`, `jti` the update
   id, `receipt_id`, `request_id`, `sub`, and `fields` / `verified_claims` /
   `provenance` of the changed fields the consent covers — provenance.py),
   encrypted to the client's `encryption_jwk` when it registered one;
   - on the client's topic (`agency_events`): `consent.fields_updated` with
     the names, and the token itself only when it is encrypted (personal data
     crosses Kafka only sealed: an unencrypted update goes by callback alone);
   - by callback when the client registered `callback_urls`: the token POSTed
     to the first URL (`application/jwt`, or `application/jose` when
     encrypted), queued here and sent by `send_due` with back-off
     (libs/retry_queue.py, libs/outbound: the SSRF-safe way out).

A revoked consent (or a one-time release) gets nothing from then on: only
`status: active, standing: true` receipts are read, inside the transaction.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.background import repeat_passes, wake_up
from libs.crypto import seal_jwt, unseal
from libs.events import agency_topic
from libs.outbound import Outbound, OutboundError
from libs.projections import CLIENTS, pairwise_subject, wants_agency_events
from libs.retry_queue import Backoff, Failure, RetryQueue
from libs.service.logging import get_logger

from .collections import CONSENT_CALLBACKS, CONSENTS
from .context import Formfill
from .provenance import released_claims
from .vault import update_fields

log = get_logger("harbour.formfill.profile_updates")
# The sender's loop, woken when an update is queued (libs/background.wake_up).
SENDER = "consent update callbacks"
CALLBACK_ATTEMPTS = 6
CALLBACK_BACKOFF_S = 1.0
CALLBACK_TIMEOUT_S = 5.0


async def on_profile_updated(formfill: Formfill, session: AsyncClientSession, data: dict[str, Any]) -> None:
    account_id = data["account_id"]
    values = unseal(data["sealed_profile"], formfill.settings.sealing_jwk)
    verification = {k: v for k, v in data["verification"].items() if k in ("method", "time", "channel")}
    if not await update_fields(formfill.db, session, formfill.cipher, account_id, values, verification, now=formfill.clock.now()):
        return  # no open vault record (never enrolled here, or closed): nothing to update, nobody to tell
    provenance = {name: verification for name in values}
    told = 0
    async for consent in formfill.db[CONSENTS].find(
            {"account_id": account_id, "standing": True, "status": "active", "fields": {"$in": sorted(values)}}, session=session):
        covered = {name: value for name, value in values.items() if name in consent["fields"]}
        await _tell(formfill, session, consent, covered, provenance, data["change_id"])
        told += 1
    await formfill.audit(session, subject=account_id, action="vault.update", actor="formfill", change_id=data["change_id"],
                         fields=sorted(values), method=verification["method"], standing_consents=told)


async def _tell(formfill: Formfill, session: AsyncClientSession, consent: dict[str, Any], values: dict[str, str],
                provenance: dict[str, dict[str, str]], change_id: str) -> None:
    client = await formfill.db[CLIENTS].find_one({"_id": consent["client_id"]}, session=session)
    if client is None:
        return
    sub = await pairwise_subject(formfill.db, client["sector"], consent["account_id"], session=session)
    update_id = f"upd-{secrets.token_urlsafe(12)}"
    now = formfill.clock.now()
    claims: dict[str, Any] = {"aud": consent["client_id"], "iat": int(now.timestamp()), "jti": update_id,
                              "receipt_id": consent["_id"], "request_id": consent["request_id"], **released_claims(values, provenance)}
    if sub is not None:
        claims["sub"] = sub
    token = await formfill.signer.sign(claims, typ="consent-update+jwt")
    media_type = "application/jwt"
    if client.get("encryption_jwk"):
        token, media_type = seal_jwt(token, client["encryption_jwk"]), "application/jose"
    if wants_agency_events(client):
        event = {"update_id": update_id, "receipt_id": consent["_id"], "request_id": consent["request_id"], "sub": sub,
                 "fields": sorted(values), "updated_at": now.isoformat()}
        if media_type == "application/jose":
            event["update"] = token  # sealed to the client's key: the only form personal data takes on Kafka
        await formfill.publish(session, agency_topic(consent["client_id"]), "consent.fields_updated", consent["_id"], event)
    urls = client.get("callback_urls") or []
    if urls:
        await formfill.db[CONSENT_CALLBACKS].insert_one({
            "_id": update_id, "account_id": consent["account_id"], "client_id": consent["client_id"], "receipt_id": consent["_id"], "url": urls[0],
            "media_type": media_type, "sealed": formfill.cipher.encrypt_record({"token": token}, record_id=f"update.{update_id}"),
            "change_id": change_id, "created_at": now, **RetryQueue.queued(now)}, session=session)
        wake_up(SENDER)
    # A release too, under the standing consent, when the client is told at all: the citizen's record says to whom,
    # which fields (names) and how (its topic carries the values only sealed to the client's key, a callback always).
    told_by = (["topic"] if wants_agency_events(client) else []) + (["callback"] if urls else [])
    if told_by:
        await formfill.audit(session, subject=consent["account_id"], action="consent.update_release", actor="formfill",
                             client_id=consent["client_id"], receipt_id=consent["_id"], update_id=update_id,
                             fields=sorted(values), change_id=change_id, told_by=told_by,
                             values_sent=bool(urls) or media_type == "application/jose")


def callback_queue(formfill: Formfill) -> RetryQueue:
    return RetryQueue(formfill.db[CONSENT_CALLBACKS], Backoff(CALLBACK_BACKOFF_S, CALLBACK_ATTEMPTS), done="delivered",
                      given_up="given_up", lease_s=CALLBACK_TIMEOUT_S * 2)


async def send_due(formfill: Formfill, outbound: Outbound, limit: int = 20) -> int:
    """POST the due updates to their clients' callback URLs; a 2xx ends one, anything else is retried with back-off.
    The delivered ones lose their token (sealed) at once: the callback record keeps ids and outcome only."""
    queue = callback_queue(formfill)
    claimed = await queue.claim_due(formfill.clock.now(), limit)

    async def attempt(doc: dict[str, Any]) -> None:
        token = formfill.cipher.decrypt_record(doc["sealed"], record_id=f"update.{doc['_id']}")["token"]
        try:
            answer = await outbound.request("POST", doc["url"], data=token, headers={"Content-Type": doc["media_type"]},
                                            timeout_s=CALLBACK_TIMEOUT_S, max_bytes=16 * 1024)
            error = None if answer.ok else f"answered {answer.status}"
        except OutboundError as exc:
            error = exc.reason
        if error is None:
            await queue.succeeded([doc["_id"]], {"delivered_at": formfill.clock.now()})
            await queue.collection.update_one({"_id": doc["_id"]}, {"$unset": {"sealed": ""}})
        elif await queue.failed(Failure(doc, error), formfill.clock.now()):
            await queue.collection.update_one({"_id": doc["_id"]}, {"$unset": {"sealed": ""}})
            log.warning("consent update callback given up", update_id=doc["_id"], client_id=doc["client_id"], error=error)

    await asyncio.gather(*(attempt(d) for d in claimed))
    return len(claimed)


async def run_sender(formfill: Formfill, *, interval_s: float = 0.5) -> None:
    """The app's background task: send due callbacks, forever (each replica claims its own; claims are exclusive)."""
    outbound = Outbound()
    await repeat_passes(lambda: send_due(formfill, outbound), interval_s=interval_s, what="consent update callbacks",
                        traceback=False, wake_name=SENDER)


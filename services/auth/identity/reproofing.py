"""In-person proofing of an existing account at a kiosk: replacing a lost phone, upgrading basic → plus.

Both start like an enrolment (identity/enrolment.py) and answer like one
when proofing fails: the selfie first (`422 selfie-rejected` /
`proofing-failed`), then the card (its keyed hash must name an account:
else `404 not-enrolled`, told only to someone whose selfie passed), then
the card-printed data (names, birth date, gender) against the keyed hash
taken at enrolment (`422 proofing-failed` when it differs; an account
enrolled before that hash existed is checked by card and selfie alone and
gets the hash now). Contact data is neither compared nor changed. A
suspended or revoked account is refused (`403 account-inactive`): an
operator reinstates, a kiosk does not.

Everything a success changes is written in one transaction with its
events, and nothing at all on a refusal:

- a replacement revokes every active device of the account (each one a
  `revocation.device` event: their device tokens are refused everywhere
  within seconds), puts a new single-use activation code on the account
  (the old code, if any, is dead), ends the account's sign-in sessions at
  the issuer (a browser the lost phone signed in gets `login_required` on
  `prompt=none`), publishes `identity.devices_replaced`
  (notify puts a security alert in the citizen's inbox) and an audit
  record. The account, its pairwise subjects, consents and certificates
  are untouched: the new phone activates through `POST /v1/devices` as the
  first one did. A kiosk proofs in person, so a `basic` account replaced
  there is `plus` afterwards (the upgrade below, in the same transaction);
- an upgrade changes the assurance of a `basic` account to `plus` and
  keeps its devices: `identity.assurance_changed` on the identity topic
  (signing and formfill keep the assurance) and, on the topic of each
  relying party the citizen has logged in to (a client of a sector where
  the account has a pairwise subject) registered with `agency_events`, the
  same news with that client's own `sub`. Relying parties see `acr` plus
  from the next login.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.backbone import ServiceContext
from libs.events import agency_topic
from libs.events.topics import IDENTITY

from ..clients.registry import clients_of_sector
from ..collections import ACCOUNTS, DEVICES, SESSIONS, SUBJECTS
from ..devices.registry import revoke_all_devices
from ..errors import AccountInactive, NotEnrolled, ProofingFailed, TransitionRefused
from ..oidc import backchannel
from ..oidc.token_response import revoke_account_grants
from ..oidc.tokens import acr_of
from ..settings import AuthSettings
from .activation import new_activation
from .enrolment import EnrolmentRequest, card_hash, identity_hash, proof_selfie
from .proofing import FaceMatcher

REPLACEABLE_STATES = ("pending", "active")


async def proof_again(ctx: ServiceContext, matcher: FaceMatcher, request: EnrolmentRequest) -> tuple[dict[str, Any], float]:
    """The account the citizen proved again to be, and the selfie's score; raise the refusal otherwise (nothing written)."""
    settings: AuthSettings = ctx.settings
    score = await proof_selfie(matcher, request)
    account = await ctx.db[ACCOUNTS].find_one({"card_hash": card_hash(settings.hash_key, request.id_number)})
    if account is None:
        raise NotEnrolled("no account is enrolled with this identity card")
    stored = account.get("identity_hash")
    if stored is not None and stored != identity_hash(settings.hash_key, request):
        raise ProofingFailed("the personal data does not match the identity enrolled with this card")
    if account["state"] not in REPLACEABLE_STATES:
        raise AccountInactive(f"the account is {account['state']}")
    return account, score


async def _account_in(ctx: ServiceContext, session: AsyncClientSession, account_id: str) -> dict[str, Any]:
    account = await ctx.db[ACCOUNTS].find_one({"_id": account_id}, session=session)
    if account is None or account["state"] not in REPLACEABLE_STATES:
        raise AccountInactive(f"the account is {account['state'] if account else 'gone'}")
    return account


async def _upgrade_in(ctx: ServiceContext, session: AsyncClientSession, account: dict[str, Any], *, actor: str) -> bool:
    """basic → plus inside the caller's transaction, with its events; False when the account is plus already."""
    account_id = account["_id"]
    if account.get("assurance") == "plus":
        return False
    now = ctx.clock.now()
    changed = await ctx.db[ACCOUNTS].update_one(
        {"_id": account_id, "assurance": account.get("assurance")},
        {"$set": {"assurance": "plus", "upgraded_at": now, "upgraded_by": actor}}, session=session)
    if changed.modified_count != 1:
        raise TransitionRefused("the account changed meanwhile")
    # Devices carry the assurance a login reads (devices/tokens.py): kept in step, like the state.
    await ctx.db[DEVICES].update_many({"account_id": account_id}, {"$set": {"account_assurance": "plus"}}, session=session)
    await ctx.publish(session, IDENTITY, "identity.assurance_changed", account_id, {
        "account_id": account_id, "from": account.get("assurance"), "to": "plus", "reason": "in-person proofing"})
    await _tell_relying_parties(ctx, session, account_id, before=account.get("assurance") or "basic")
    await ctx.audit(session, subject=account_id, action="identity.upgrade", actor=actor, assurance="plus")
    return True


async def _tell_relying_parties(ctx: ServiceContext, session: AsyncClientSession, account_id: str, *, before: str) -> None:
    """The news on the topic of every client the citizen has logged in to (its sector holds a subject) that subscribed."""
    subjects = await ctx.db[SUBJECTS].find({"account_id": account_id}, {"sector": 1}, session=session).to_list()
    for subject in subjects:
        for client in await clients_of_sector(ctx.db, subject["sector"]):
            if client.metadata.agency_events:
                await ctx.publish(session, agency_topic(client.client_id), "identity.assurance_changed", subject["_id"], {
                    "client_id": client.client_id, "sub": subject["_id"],
                    "acr": acr_of("plus"), "previous_acr": acr_of(before), "assurance_level": "plus"})


async def replace_devices(ctx: ServiceContext, session: AsyncClientSession, account_id: str, *, actor: str,
                          in_person: bool = True) -> dict[str, Any]:
    """Inside a transaction: revoke every device, a new activation code, the events; the kiosk's answer.

    `in_person=False`: the sandbox's self-service recovery (`recover_phone`): the same, but the assurance stays."""
    settings: AuthSettings = ctx.settings
    db, now = ctx.db, ctx.clock.now()
    account = await _account_in(ctx, session, account_id)
    devices = await revoke_all_devices(ctx, session, account_id, actor=actor, reason="replaced")
    # The sign-in sessions at the issuer (prompt=none) were approved with the old phones: a browser the lost
    # phone signed in must approve again, on the new phone.
    # Every relying party with one of those sessions or a grant is told (back-channel logout), before they end.
    await backchannel.queue_logouts(ctx, session, account_id, reason="devices replaced")
    ended = (await db[SESSIONS].delete_many({"account_id": account_id}, session=session)).deleted_count
    # Relying parties' refresh tokens (and the access tokens issued with them) came from the old phones' approvals:
    # a phone lost to someone else must leave nothing that lets them go on; the citizen logs in again.
    grants = await revoke_account_grants(ctx, session, account_id)
    activation = new_activation(settings.hash_key, ttl_s=settings.activation_ttl_s, now=now)
    await db[ACCOUNTS].update_one({"_id": account_id}, {
        "$set": {"activation": activation.stored(), "replaced_at": now, "replaced_by": actor},
        "$inc": {"replacements": 1}}, session=session)
    await ctx.publish(session, IDENTITY, "identity.devices_replaced", account_id, {
        "account_id": account_id, "devices_revoked": len(devices),
        "reason": "replaced at a kiosk" if in_person else "recovered in the sandbox"})
    await ctx.audit(session, subject=account_id, action="identity.replace" if in_person else "identity.recover",
                    actor=actor, devices_revoked=len(devices), sessions_ended=ended, refresh_tokens_revoked=grants)
    upgraded = await _upgrade_in(ctx, session, account, actor=actor) if in_person else False
    return {
        "account_id": account_id,
        "state": account["state"],
        "assurance": "plus" if in_person else account.get("assurance") or "basic",
        "activation_code": activation.display(),
        "activation_expires_at": activation.expires_at.isoformat(),
        "devices_revoked": len(devices),
        "upgraded": upgraded,
    }


async def _record_identity_hash(ctx: ServiceContext, session: AsyncClientSession, account: dict[str, Any],
                                request: EnrolmentRequest) -> None:
    """An account enrolled before the card-printed data was hashed gets the hash of what was proofed now."""
    if account.get("identity_hash") is None:
        await ctx.db[ACCOUNTS].update_one({"_id": account["_id"], "identity_hash": None},
                                          {"$set": {"identity_hash": identity_hash(ctx.settings.hash_key, request)}},
                                          session=session)


async def replace_phone(ctx: ServiceContext, matcher: FaceMatcher, request: EnrolmentRequest, *, actor: str) -> dict[str, Any]:
    """A lost phone replaced at a kiosk: proofing again, then one transaction (devices, code, events)."""
    account, _score = await proof_again(ctx, matcher, request)

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        await _record_identity_hash(ctx, session, account, request)
        return await replace_devices(ctx, session, account["_id"], actor=actor)

    return await ctx.transaction(work)


async def recover_phone(ctx: ServiceContext, matcher: FaceMatcher, request: EnrolmentRequest) -> dict[str, Any]:
    """The sandbox's self-service recovery of a test citizen who lost their phone: the kiosk replacement's proofing
    (the selfie, the card, the card-printed data against the enrolment's) and transaction (every device revoked and
    told, sessions ended, a new activation code), without a kiosk; the assurance is left as it was (nobody saw the
    citizen). The endpoint refuses it outside the sandbox."""
    account, _score = await proof_again(ctx, matcher, request)

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        await _record_identity_hash(ctx, session, account, request)
        return await replace_devices(ctx, session, account["_id"], actor="sandbox-recovery", in_person=False)

    return await ctx.transaction(work)


async def upgrade_assurance(ctx: ServiceContext, matcher: FaceMatcher, request: EnrolmentRequest, *, actor: str) -> dict[str, Any]:
    """A basic account proofed in person at a kiosk becomes plus; devices, subjects and consents stay."""
    account, _score = await proof_again(ctx, matcher, request)

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        await _record_identity_hash(ctx, session, account, request)
        upgraded = await _upgrade_in(ctx, session, await _account_in(ctx, session, account["_id"]), actor=actor)
        return {"account_id": account["_id"], "state": account["state"], "assurance": "plus", "upgraded": upgraded}

    return await ctx.transaction(work)

"""Closing an account for good: by the citizen (approved on the phone) or by an operator (with a reason).

The citizen's route is two steps, like every approval: a device of the
account asks (`POST /v1/account/closure`, `request_closure`), which queues a
`close_account` prompt on the account's own queue; the phone's device-signed
decision on it (`POST /v1/approvals/{id}/decision`) closes the account inside
the decision's transaction (`on_decision`, the finisher app.py registers).
A denial, an expired prompt or a prompt nobody decides changes nothing, and
another account's device cannot even see the prompt. An operator closes with
`python -m services.auth.admin close-account ACCOUNT_ID --reason ... --operator NAME`
(`close_by_operator`).

`close_account` writes everything in one transaction with its events:

- the account goes to `closed` (accounts.change_state: `identity.state_changed`
  with `to: closed` on the identity topic, and the revocation event naming the
  account id and every pairwise subject, so device tokens and relying parties'
  access tokens are refused everywhere within seconds);
- every device revoked (`revocation.device` each), every refresh token of the
  account revoked, the sign-in sessions at the issuer ended, an activation
  code not yet used dropped;
- the card number's keyed hash moves out of the unique `card_hash` (which
  becomes `closed:<account id>`) into `closed_card_hash`, kept for audit: the
  same card can enrol again as a new account (new pairwise subjects: they
  derive from the account id); the keyed hash of the card-printed data goes;
- the account's events are deleted from auth's outbox, where sent ones wait
  a week: among them the profile sealed to formfill's key at enrolment
  (`identity.enrolled`) and any changed field or contact sealed later, which
  go even if unsent: nothing in auth's database opens to the citizen's data;
- each relying party the citizen logged in to (its sector holds a pairwise
  subject) that subscribed (`agency_events`) gets `identity.account_closed` on
  its own topic with its own `sub`;
- the audit record `identity.close` (actor: the deciding device or the
  operator; by: citizen|operator; the reason).

formfill, signing and notify act on `identity.state_changed` to `closed`:
formfill destroys the vault record's data key and the releases waiting to be
read, signing revokes the certificates and destroys their HSM keys, notify
deletes the inbox, preferences and contact details (docs/privacy.md).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.approvals import ApprovalRequest
from libs.backbone import ServiceContext
from libs.events import agency_topic
from libs.events.outbox import OUTBOX_COLLECTION

from ..approvals import queue
from ..approvals.decisions import PLATFORM_REQUESTER
from ..clients.registry import clients_of_sector
from ..collections import ACCOUNTS, PROFILE_CHANGES, REFRESH_TOKENS, SESSIONS, SUBJECTS
from ..devices.registry import revoke_all_devices
from ..errors import AccountInactive, TransitionRefused
from ..settings import AuthSettings
from .accounts import change_state

if TYPE_CHECKING:
    from ..context import Auth
    from ..devices.tokens import DeviceContext

ACTION = "close_account"
PROMPT_TTL_S = 300
CLOSABLE = ("pending", "active", "suspended", "revoked")
# What `card_hash` holds once the card is free to enrol again (closed here; revoked and re-enrolled: enrolment.py).
TOMBSTONES = ("closed:", "revoked:")
# Identity events that carry personal data sealed to a service (the enrolled profile, a changed field or contact).
PERSONAL_EVENTS = ("identity.enrolled", "identity.profile_updated", "identity.contact_verification")


async def request_closure(auth: "Auth", device: "DeviceContext") -> dict[str, Any]:
    """Queue the closure prompt on the device's own account; nothing else changes until the phone approves it."""
    account = await auth.db[ACCOUNTS].find_one({"_id": device.account_id}, {"state": 1})
    if account is None or account["state"] != "active":
        raise AccountInactive(f"the account is {account['state'] if account else 'gone'}")
    expires_at = (auth.clock.now() + timedelta(seconds=PROMPT_TTL_S)).replace(microsecond=0)
    prompt = ApprovalRequest(
        approval_id=f"close-{uuid.uuid4().hex}",
        account_id=device.account_id,
        action=ACTION,
        requester=PLATFORM_REQUESTER,
        purpose="Close your Harbour ID account for good",
        details={"consequences": [
            "every device and login is revoked",
            "your personal data in the vault is destroyed",
            "your signing certificate is revoked",
            "your inbox and notification preferences are deleted",
            "the services you logged in to are told the account is closed",
        ]},
        expires_at=expires_at,
    )
    await queue.enqueue(auth, None, prompt)
    return {"approval_id": prompt.approval_id, "status": "pending", "expires_at": expires_at.isoformat()}


async def on_decision(auth: "Auth", session: AsyncClientSession, approval: dict[str, Any], decision: str) -> dict[str, Any]:
    """The finisher of a `close_account` prompt, inside the decision's transaction: approved, the account closes."""
    if decision != "approve":
        return {}
    await close_account(auth, session, approval["account_id"], actor=approval["device_id"], by="citizen",
                        reason="closed by the citizen from the app")
    return {"account_state": "closed"}


async def close_account(ctx: ServiceContext, session: AsyncClientSession, account_id: str, *, actor: str, by: str,
                        reason: str) -> dict[str, Any]:
    """Inside the caller's transaction: the whole closure on auth's side, with its events (module docstring)."""
    settings: AuthSettings = ctx.settings
    db, now = ctx.db, ctx.clock.now()
    account = await db[ACCOUNTS].find_one({"_id": account_id}, session=session)
    if account is None:
        raise TransitionRefused("no such account")
    if account["state"] not in CLOSABLE:
        raise TransitionRefused(f"the account is {account['state']}")
    devices = await revoke_all_devices(ctx, session, account_id, actor=actor, reason="account closed")
    # The state, identity.state_changed (what formfill, signing and notify shred on) and the account's revocation event.
    # The operator's reason stays in the audit record: the identity topic says only who closed it.
    await change_state(ctx, session, account_id, "closed", reason=f"closed by the {by}",
                       token_lifetime_s=settings.max_jwt_lifetime_s)
    refresh = await db[REFRESH_TOKENS].update_many(
        {"grant.account_id": account_id, "status": {"$ne": "revoked"}}, {"$set": {"status": "revoked"}}, session=session)
    sessions = (await db[SESSIONS].delete_many({"account_id": account_id}, session=session)).deleted_count
    update: dict[str, Any] = {
        "$set": {"closed_at": now, "closed_by": actor, "closed_reason": reason},
        "$unset": {"identity_hash": "", "activation": ""},
    }
    card = account.get("card_hash")
    # A revoked account whose card enrolled anew holds `revoked:<id>` already (its hash in revoked_card_hash): left so.
    if card and not str(card).startswith(TOMBSTONES):
        update["$set"] |= {"card_hash": f"closed:{account_id}", "closed_card_hash": card}
    await db[ACCOUNTS].update_one({"_id": account_id}, update, session=session)
    # The outbox keeps sent events a week (diagnosis): the account's go now, among them the profile sealed to
    # formfill at enrolment; events carrying sealed personal data go even if unsent (nobody needs them any more).
    shredded = (await db[OUTBOX_COLLECTION].delete_many(
        {"key": account_id, "$or": [{"sent_at": {"$exists": True}}, {"type": {"$in": PERSONAL_EVENTS}}]},
        session=session)).deleted_count
    # Contact changes waiting for their code hold the new value sealed to formfill and notify (profile/changes.py).
    await db[PROFILE_CHANGES].delete_many({"account_id": account_id}, session=session)
    told = await _tell_relying_parties(ctx, session, account_id, now.isoformat())
    await ctx.audit(session, subject=account_id, action="identity.close", actor=actor, by=by, reason=reason,
                    previous_state=account["state"], devices_revoked=len(devices),
                    refresh_tokens_revoked=refresh.modified_count, sessions_ended=sessions,
                    outbox_events_deleted=shredded, relying_parties_told=told)
    return {"account_id": account_id, "state": "closed", "devices_revoked": len(devices),
            "refresh_tokens_revoked": refresh.modified_count, "relying_parties_told": told}


async def _tell_relying_parties(ctx: ServiceContext, session: AsyncClientSession, account_id: str, closed_at: str) -> int:
    """`identity.account_closed` on the topic of every subscribed client of a sector holding a subject: its own sub."""
    told = 0
    subjects = await ctx.db[SUBJECTS].find({"account_id": account_id}, {"sector": 1}, session=session).to_list()
    for subject in subjects:
        for client in await clients_of_sector(ctx.db, subject["sector"]):
            if client.metadata.agency_events:
                await ctx.publish(session, agency_topic(client.client_id), "identity.account_closed", subject["_id"], {
                    "client_id": client.client_id, "sub": subject["_id"], "closed_at": closed_at})
                told += 1
    return told


async def close_by_operator(ctx: ServiceContext, account_id: str, *, operator: str, reason: str) -> dict[str, Any]:
    """An operator's closure (auth's admin command): the same transaction, the operator and reason in the audit record."""
    return await ctx.transaction(lambda session: close_account(
        ctx, session, account_id, actor=f"operator:{operator}", by="operator", reason=reason))

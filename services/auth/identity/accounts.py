"""Citizen accounts: life-cycle states and their transitions, each one an event.

pending (enrolled, no device yet) → active (first device bound) →
suspended ⇄ active, and revoked from any state, for good. `closed` is the
other end for good, from any state but itself (revoked included): the
citizen or an operator closed the account, its personal data is shredded
(identity/closure.py). A closed account never comes back; the same card
enrols a new account, with new pairwise subjects.
"""

from __future__ import annotations

import time
from typing import Literal

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.backbone import ServiceContext
from libs.events.topics import IDENTITY
from libs.lifecycle import Lifecycle
from libs.revocation import events as revocation_events

from ..collections import ACCOUNTS, DEVICES, SESSIONS, SUBJECTS
from ..errors import TransitionRefused
from ..oidc import backchannel

State = Literal["pending", "active", "suspended", "revoked", "closed"]
ACCOUNT = Lifecycle[str](transitions={
    "pending": frozenset({"active", "revoked", "closed"}),
    "active": frozenset({"suspended", "revoked", "closed"}),
    "suspended": frozenset({"active", "revoked", "closed"}),
    "revoked": frozenset({"closed"}),
    "closed": frozenset(),
})
INACTIVE = ("suspended", "revoked", "closed")
TRANSITIONS = ACCOUNT.transitions


# How long a revocation must be remembered: the longest JWT auth issues (AuthSettings.max_jwt_lifetime_s is 10 minutes).
DEFAULT_TOKEN_LIFETIME_S = 3600


# identity.state_changed's reason of an operator's change (the operator's own reason: in the audit record only).
OPERATOR_CHANGE = "changed by the operator"


async def change_state(
    ctx: ServiceContext,
    session: AsyncClientSession,
    account_id: str,
    to: State,
    *,
    reason: str,
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
    actor: str | None = None,
) -> None:
    """Move an account to `to` inside the caller's transaction and publish identity.state_changed.

    `actor`: who changed it, for the audit record `identity.state_change` (an operator's command: `operator:<name>`,
    with the `reason`); None where the caller's own audit record says it (closure, a device's activation). An
    operator's reason is free text that may say anything about the citizen: it stays in the audit record, and
    identity.state_changed says only `changed by the operator`.

    Suspending or revoking it (and reinstating it) is also a revocation event: every service and the
    gateway refuse the account's tokens within seconds, not only when they expire.
    """
    db = ctx.db
    account = await db[ACCOUNTS].find_one({"_id": account_id}, session=session)
    if account is None:
        raise TransitionRefused("no such account")
    current = account["state"]
    if not ACCOUNT.allows(current, to):
        raise TransitionRefused(f"an account cannot go from {current} to {to}")
    now = ctx.clock.now()
    result = await db[ACCOUNTS].update_one(
        {"_id": account_id, "state": current},
        {"$set": {"state": to, "state_changed_at": now}},
        session=session,
    )
    if result.modified_count != 1:
        raise TransitionRefused("the account changed meanwhile")
    # The account's devices carry its state: a device token check reads the device alone (devices/tokens.py).
    await db[DEVICES].update_many({"account_id": account_id}, {"$set": {"account_state": to}}, session=session)
    await ctx.publish(session, IDENTITY, "identity.state_changed", account_id,
                      {"account_id": account_id, "from": current, "to": to,
                       "reason": reason if actor is None else OPERATOR_CHANGE})
    if actor is not None:
        await ctx.audit(session, subject=account_id, action="identity.state_change", actor=actor, reason=reason,
                        **{"from": current, "to": to})
    if to in INACTIVE and current not in INACTIVE:
        # Back-channel logout: every relying party with a session or a grant of the citizen's is told (the closure
        # ends the sessions itself); a suspended or revoked account's sessions at the issuer end here.
        await backchannel.queue_logouts(ctx, session, account_id, reason=f"account {to}")
        if to != "closed":
            await db[SESSIONS].delete_many({"account_id": account_id}, session=session)
    if to in INACTIVE or current in INACTIVE:
        # Device tokens carry the account id as sub, relying parties' tokens one of its pairwise subjects.
        subjects = [doc["_id"] for doc in await db[SUBJECTS].find({"account_id": account_id}, {"_id": 1}, session=session).to_list()]
        # Wall-clock times, like the tokens' own `iat` and `exp` they are compared with.
        at = time.time()
        await revocation_events.account_changed(
            ctx.outbox, session, [account_id, *subjects], state=to, at=at, expires_at=at + token_lifetime_s + 60,
        )

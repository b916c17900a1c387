"""Citizen accounts: life-cycle states and their transitions, each one an event.

pending (enrolled, no device yet) → active (first device bound) →
suspended ⇄ active, and revoked from any state, for good.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs.events import CloudEvent, Outbox
from libs.events.topics import IDENTITY
from libs.revocation import events as revocation_events

from ..collections import ACCOUNTS, SUBJECTS

State = Literal["pending", "active", "suspended", "revoked"]
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"active", "revoked"}),
    "active": frozenset({"suspended", "revoked"}),
    "suspended": frozenset({"active", "revoked"}),
    "revoked": frozenset(),
}


# How long a revocation must be remembered: the longest JWT auth issues (AuthSettings.max_jwt_lifetime_s is 10 minutes).
DEFAULT_TOKEN_LIFETIME_S = 3600


class TransitionRefused(ValueError):
    pass


async def change_state(
    db: AsyncDatabase,
    session: AsyncClientSession,
    account_id: str,
    to: State,
    *,
    reason: str,
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
) -> None:
    """Move an account to `to` inside the caller's transaction and publish identity.state_changed.

    Suspending or revoking it (and reinstating it) is also a revocation event: every service and the
    gateway refuse the account's tokens within seconds, not only when they expire.
    """
    account = await db[ACCOUNTS].find_one({"_id": account_id}, session=session)
    if account is None:
        raise TransitionRefused("no such account")
    current = account["state"]
    if to not in TRANSITIONS[current]:
        raise TransitionRefused(f"an account cannot go from {current} to {to}")
    now = datetime.now(UTC)
    result = await db[ACCOUNTS].update_one(
        {"_id": account_id, "state": current},
        {"$set": {"state": to, "state_changed_at": now}},
        session=session,
    )
    if result.modified_count != 1:
        raise TransitionRefused("the account changed meanwhile")
    await Outbox(db).add(
        session,
        IDENTITY.name,
        CloudEvent(
            source="/auth",
            type="identity.state_changed",
            subject=account_id,
            data={"account_id": account_id, "from": current, "to": to, "reason": reason},
        ),
    )
    if to in ("suspended", "revoked") or current in ("suspended", "revoked"):
        # Device tokens carry the account id as sub, relying parties' tokens one of its pairwise subjects.
        subjects = [doc["_id"] for doc in await db[SUBJECTS].find({"account_id": account_id}, {"_id": 1}, session=session).to_list()]
        await revocation_events.account_changed(
            Outbox(db), session, [account_id, *subjects], state=to, at=now.timestamp(),
            expires_at=now.timestamp() + token_lifetime_s + 60,
        )

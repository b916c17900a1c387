"""The events auth writes to the `revocations` topic, through its outbox, in the transaction of the revocation."""

from __future__ import annotations

from collections.abc import Iterable

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import CloudEvent, Outbox
from libs.events.topics import REVOCATIONS

from .projection import ACCOUNT_CHANGED, DEVICE_REVOKED, TOKENS_REVOKED, subject_hash

SOURCE = "/auth"
# One partition and one key: readers apply them in the order auth committed them.
KEY = "revocations"
MAX_JTIS_PER_EVENT = 500


async def tokens_revoked(outbox: Outbox, session: AsyncClientSession, jtis: Iterable[str], *, expires_at: float) -> None:
    """Access tokens by id; `expires_at` is no earlier than the latest of their expiries."""
    jtis = sorted(set(jtis))
    for start in range(0, len(jtis), MAX_JTIS_PER_EVENT):
        await _add(outbox, session, TOKENS_REVOKED, {"jtis": jtis[start:start + MAX_JTIS_PER_EVENT], "expires_at": expires_at})


async def device_revoked(outbox: Outbox, session: AsyncClientSession, device_id: str, *, expires_at: float) -> None:
    """Every device token of the device, until the last one that could have been issued expires."""
    await _add(outbox, session, DEVICE_REVOKED, {"device_id": device_id, "expires_at": expires_at})


async def account_changed(
    outbox: Outbox, session: AsyncClientSession, subs: Iterable[str], *, state: str, at: float, expires_at: float
) -> None:
    """An account suspended, revoked or reinstated; `subs` are its id and its pairwise subjects (sent hashed)."""
    await _add(outbox, session, ACCOUNT_CHANGED, {"subjects": sorted({subject_hash(s) for s in subs}), "state": state,
                                                  "at": at, "expires_at": expires_at})


async def _add(outbox: Outbox, session: AsyncClientSession, event_type: str, data: dict) -> None:
    await outbox.add(session, REVOCATIONS.name, CloudEvent(source=SOURCE, type=event_type, data=data), key=KEY)

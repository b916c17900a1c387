"""OpenID Connect Core §8.1 pairwise subject identifiers.

`sub` = base64url(HMAC-SHA256(key, sector | account)): stable for one sector,
unlinkable across sectors. The mapping back to the account is kept so tokens
can be resolved (userinfo, introspection, CIBA login hints).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from libs import base64url
from libs.backbone import ServiceContext
from libs.events.topics import IDENTITY

from ..collections import SUBJECTS


# Subjects seen already stored (committed): their next login need not write them again. Bounded, oldest out.
KNOWN_LIMIT = 100_000
_known: OrderedDict[str, None] = OrderedDict()


def _remember(sub: str) -> None:
    _known[sub] = None
    _known.move_to_end(sub)
    if len(_known) > KNOWN_LIMIT:
        _known.popitem(last=False)


def pairwise_sub(key: bytes, sector: str, account_id: str) -> str:
    mac = hmac.new(key, b"pairwise\x00" + sector.encode() + b"\x00" + account_id.encode(), hashlib.sha256).digest()
    return base64url.encode(mac)


async def subject_for(ctx: ServiceContext, session: AsyncClientSession, sector: str, account_id: str) -> str:
    """The citizen's sub in this sector; a new one is announced (identity.subject_assigned) in the same transaction.

    Services that receive a client's token (formfill, signing, notify) learn
    from that event which account a pairwise sub stands for. `ctx` is auth's
    context (or its operator commands'): its database, outbox and hash key.
    """
    sub = pairwise_sub(ctx.settings.hash_key, sector, account_id)
    if sub in _known:
        return sub  # stored (and announced) before: no write
    result = await ctx.db[SUBJECTS].update_one(
        {"_id": sub}, {"$setOnInsert": {"account_id": account_id, "sector": sector}}, upsert=True, session=session
    )
    if result.upserted_id is None:
        # Found: another transaction stored it and committed; one that rolls back leaves nothing remembered.
        _remember(sub)
    else:
        await ctx.publish(session, IDENTITY, "identity.subject_assigned", account_id,
                          {"account_id": account_id, "sector": sector, "sub": sub})
    return sub


async def account_for(db: AsyncDatabase, sub: str, sector: str) -> str | None:
    doc = await db[SUBJECTS].find_one({"_id": sub, "sector": sector})
    return doc["account_id"] if doc else None

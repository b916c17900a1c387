"""Single-use assertions: a signed JWT's `jti` is accepted once, and remembered until the assertion has expired.

auth keeps one collection each for a device's token requests and a client's
`private_key_jwt` assertions, with a TTL index on `expires_at`, so the
record of a used `jti` goes when replaying it could no longer verify anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

# Kept a minute past `exp`: a verifier's leeway must not open a window for a replay.
KEPT_PAST_EXPIRY = timedelta(minutes=1)


def _key(signer: str, claims: Mapping[str, Any]) -> str:
    return f"{signer}:{claims['jti']}"


async def used_before(used: AsyncCollection, signer: str, claims: Mapping[str, Any]) -> bool:
    """Whether `signer`'s assertion was used already (a read: nothing spent; first_use decides)."""
    return await used.find_one({"_id": _key(signer, claims)}, {"_id": 1}) is not None


async def first_use(used: AsyncCollection, signer: str, claims: Mapping[str, Any]) -> bool:
    """Record `signer`'s assertion (its verified `jti` and `exp`); False if it was used before (a replay).

    `signer` scopes the `jti` (a device id, a client id): one party cannot
    spend another's identifiers.
    """
    try:
        await used.insert_one(
            {"_id": _key(signer, claims), "expires_at": datetime.fromtimestamp(claims["exp"], UTC) + KEPT_PAST_EXPIRY}
        )
    except DuplicateKeyError:
        return False
    return True

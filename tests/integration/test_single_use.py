"""libs/tokens/single_use.py on the real database: a jti is spent once per signer, and kept a minute past its expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from libs.tokens.single_use import first_use

pytestmark = pytest.mark.integration


@pytest.fixture
def used(scratch_database):
    return scratch_database["used_assertions"]


async def test_a_jti_is_accepted_once_per_signer_even_when_presented_concurrently(used):
    claims = {"jti": "abc", "exp": 1_900_000_000}
    outcomes = await asyncio.gather(*(first_use(used, "device-1", claims) for _ in range(5)))
    assert sorted(outcomes) == [False, False, False, False, True]
    assert await first_use(used, "device-2", claims) is True  # another signer's identifiers are its own

    record = await used.find_one({"_id": "device-1:abc"})
    assert record["expires_at"].replace(tzinfo=UTC) == datetime(2030, 3, 17, 17, 47, 40, tzinfo=UTC)  # exp + 1 min

"""What the integration tests share: a database of their own on the session's server, dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from libs.store import create_client


@pytest.fixture
async def scratch_database(infra, request) -> AsyncIterator[AsyncDatabase]:
    """A database named after the test module (unique per run, like every test's), dropped when the test ends."""
    client = create_client(infra.mongo_uri)
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    db = client[infra.settings(name).database]
    yield db
    await client.drop_database(db.name)
    await client.close()

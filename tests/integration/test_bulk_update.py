"""libs/store/bulk.py on the real database: one update for many documents named by `_id`, as per-`_id` updates."""

from __future__ import annotations

import pytest
from pymongo import monitoring

from libs.store import create_client
from libs.store.bulk import update_each
from libs.store.transactions import in_transaction

pytestmark = pytest.mark.integration


class Commands(monitoring.CommandListener):
    """The commands a client sends: what reaches the database, as the database sees it."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update":
            self.sent.append(event.command.to_dict() if hasattr(event.command, "to_dict") else dict(event.command))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


async def test_each_named_document_is_updated_and_no_other(scratch_database):
    docs = scratch_database["docs"]
    await docs.insert_many([{"_id": f"d{i}", "n": i} for i in range(250)])
    named = [f"d{i}" for i in range(0, 250, 2)] + ["missing"]  # 125 that exist, across two commands of 100, and one not
    assert await update_each(docs, named, {"$set": {"marked": True}, "$inc": {"n": 1000}}) == 125
    marked = {doc["_id"]: doc["n"] for doc in await docs.find({"marked": True}).to_list()}
    assert marked == {f"d{i}": i + 1000 for i in range(0, 250, 2)}
    assert await docs.count_documents({"marked": {"$exists": False}}) == 125  # the others untouched
    assert await docs.count_documents({"_id": "missing"}) == 0  # never an upsert
    assert await update_each(docs, [], {"$set": {"marked": False}}) == 0


async def test_it_is_sent_as_per_id_updates_at_most_100_to_a_command(infra, scratch_database):
    """The form the local server serves from the `_id` index: `{_id: x}` per statement, never an `$in` scan."""
    commands = Commands()
    client = create_client(infra.mongo_uri, event_listeners=[commands])
    try:
        docs = client[scratch_database.name]["docs"]
        await docs.insert_many([{"_id": i} for i in range(150)])
        await update_each(docs, range(150), {"$set": {"seen": True}})
    finally:
        await client.close()
    assert [len(command["updates"]) for command in commands.sent] == [100, 50]
    statements = [update for command in commands.sent for update in command["updates"]]
    assert [statement["q"] for statement in statements] == [{"_id": i} for i in range(150)]
    assert not any(statement.get("multi") or statement.get("upsert") for statement in statements)


async def test_inside_a_transaction_it_commits_or_aborts_with_it(infra, scratch_database):
    client = create_client(infra.mongo_uri)
    try:
        docs = client[scratch_database.name]["docs"]
        await docs.insert_many([{"_id": i} for i in range(3)])

        async def mark_then_fail(session):
            await update_each(docs, [0, 1], {"$set": {"marked": True}}, session=session)
            raise RuntimeError("the rest of the work failed")

        with pytest.raises(RuntimeError):
            await in_transaction(client, mark_then_fail)
        assert await docs.count_documents({"marked": True}) == 0

        async def mark(session):
            await update_each(docs, [0, 1], {"$set": {"marked": True}}, session=session)

        await in_transaction(client, mark)
        assert await docs.count_documents({"marked": True}) == 2
    finally:
        await client.close()

"""The audit records a service wrote (its outbox keeps sent events a week), and the rule that none carries personal data."""

from __future__ import annotations

import json
from typing import Any

from .database import mongo


async def audit_records(platform, service: str, *, subject: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
    """`audit.recorded` events in `service`'s outbox (about `subject`, of `action`), oldest first: the whole events."""
    query: dict[str, Any] = {"topic": "audit.events"}
    if subject is not None:
        query["key"] = subject
    async with mongo(platform.infra.mongo_uri) as client:
        docs = await client[platform.database(service)]["outbox"].find(query).sort("seq", 1).to_list()
    events = [json.loads(doc["value"]) for doc in docs]
    return [e for e in events if action is None or e["data"]["action"] == action]


def no_personal_data(records: list[dict[str, Any]], *values: str) -> None:
    """None of the citizen's `values` (name, phone, e-mail, address, a document's name, text they typed) in any record."""
    text = json.dumps(records, ensure_ascii=False)
    for value in values:
        assert value not in text, f"{value!r} in an audit record"

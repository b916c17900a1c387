"""The push channel's retries against the real database: a provider that refuses or is unreachable.

The provider is the one part faked here (it is an external service behind
`PushAdapter`); the queue (libs/retry_queue.py), its indexes and the back-off
run on the real MongoDB-protocol server. Time is a FrozenClock, moved past
each back-off instead of waiting for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.clock import FrozenClock
from libs.crypto import FieldCipher
from libs.crypto.keyring import Keyring, new_key_value
from libs.store import apply_indexes, create_client
from services.notify.channels import Push, PushFailed, push_queue, send_due_pushes
from services.notify.collections import INDEXES, PUSHES

pytestmark = pytest.mark.integration


class FlakyProvider:
    """Refuses the pushes it is told to, or is unreachable; records what it took."""

    name = "flaky"

    def __init__(self) -> None:
        self.refuse: set[str] = set()
        self.unreachable = False
        self.taken: list[Push] = []

    async def send(self, pushes: list[Push]) -> set[str]:
        if self.unreachable:
            raise PushFailed("provider down")
        self.taken += [p for p in pushes if p.push_id not in self.refuse]
        return {p.push_id for p in pushes} & self.refuse


async def test_refused_pushes_back_off_exponentially_then_fail_and_the_rest_are_sent(infra):
    client = create_client(infra.mongo_uri)
    db = client[infra.settings("push-retries").database]
    cipher = FieldCipher(Keyring.from_env_value(new_key_value("push-test")))
    await apply_indexes(db, INDEXES)
    clock = FrozenClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    now = clock.now()
    queue = push_queue(db, max_attempts=3, backoff_s=10)
    await db[PUSHES].insert_many([
        {"_id": f"psh-{n}", "notification_id": f"ntf-{n}", "account_id": "acct-1", "priority": "normal",
         "sealed": cipher.encrypt_record({"title": f"Title {n}", "body": "Body"}, record_id=f"psh-{n}"),
         "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now} for n in (1, 2)])
    provider = FlakyProvider()
    provider.refuse = {"psh-2"}
    try:
        # First round: psh-1 goes out (decrypted for the provider), psh-2 is refused and waits backoff * 2**0.
        assert await send_due_pushes(queue, cipher, provider, clock) == 2
        assert [(p.push_id, p.title) for p in provider.taken] == [("psh-1", "Title 1")]
        sent, waiting = await db[PUSHES].find_one({"_id": "psh-1"}), await db[PUSHES].find_one({"_id": "psh-2"})
        assert sent["state"] == "sent" and sent["attempts"] == 1
        assert waiting["state"] == "pending" and waiting["attempts"] == 1
        assert waiting["next_attempt_at"].replace(tzinfo=UTC) - now == timedelta(seconds=10)
        # Not due yet, a moment before the back-off ends: nothing is handed over.
        clock.advance(9.9)
        assert await send_due_pushes(queue, cipher, provider, clock) == 0

        # Due again, provider unreachable: the second wait doubles.
        retried_at = clock.advance(0.1)
        provider.unreachable = True
        assert await send_due_pushes(queue, cipher, provider, clock) == 1
        waiting = await db[PUSHES].find_one({"_id": "psh-2"})
        assert waiting["state"] == "pending" and waiting["attempts"] == 2
        assert waiting["next_attempt_at"].replace(tzinfo=UTC) - retried_at == timedelta(seconds=20)

        # The third refusal is the last: failed, and never handed over again.
        clock.advance(20)
        assert await send_due_pushes(queue, cipher, provider, clock) == 1
        failed = await db[PUSHES].find_one({"_id": "psh-2"})
        assert failed["state"] == "failed" and failed["attempts"] == 3
        provider.unreachable = False
        clock.advance(3600)
        assert await send_due_pushes(queue, cipher, provider, clock) == 0
        assert [p.push_id for p in provider.taken] == ["psh-1"]
    finally:
        await client.drop_database(db.name)
        await client.close()

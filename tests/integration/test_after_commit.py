"""What waits for a transaction's commit (libs/store/transactions.py `after_commit`), on the real database.

The callbacks run once the transaction has committed, whoever runs it (a request's use case, an event consumer);
never for one that aborted, and only the committing attempt's when PyMongo runs the work again. auth hands a prompt
it queued to the phones' open streams that way (approvals/queue.py `announce`): at the commit, not before, not for
a transaction that failed, and not again for an approval id already queued.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pymongo.errors import OperationFailure

from libs.clock import SystemClock
from libs.crypto import FieldCipher, Keyring, new_key_value
from libs.store import after_commit, at_commit, in_transaction
from services.auth.approvals.queue import enqueue
from services.auth.approvals.stream import PromptFeed
from services.auth.collections import APPROVALS

from ..support.prompts import approval_request

pytestmark = pytest.mark.integration


class _Refused(Exception):
    pass


async def test_callbacks_run_after_the_commit_never_after_an_abort_and_only_the_last_attempts(scratch_database):
    client, things = scratch_database.client, scratch_database["things"]
    ran: list[str] = []
    seen_at_callback: list[int] = []

    async def work(session):
        await things.insert_one({"_id": "a"}, session=session)
        assert after_commit("k", lambda: ran.append("committed"))
        after_commit("seen", lambda: seen_at_callback.append(0))
        assert ran == []  # not yet: inside the transaction

    await in_transaction(client, work)
    assert ran == ["committed"] and seen_at_callback == [0]

    async def aborted(session):
        await things.insert_one({"_id": "b"}, session=session)
        after_commit("k", lambda: ran.append("aborted"))
        raise _Refused

    with pytest.raises(_Refused):
        await in_transaction(client, aborted)
    assert ran == ["committed"] and await things.find_one({"_id": "b"}) is None

    attempts = 0

    async def retried(session):  # the first attempt fails as a transient error would: PyMongo runs the work again
        nonlocal attempts
        attempts += 1
        await things.insert_one({"_id": f"c{attempts}"}, session=session)
        after_commit(f"attempt-{attempts}", lambda n=attempts: ran.append(f"attempt {n}"))
        if attempts == 1:
            raise OperationFailure("write conflict", code=112, details={"errorLabels": ["TransientTransactionError"]})

    await in_transaction(client, retried)
    assert attempts == 2 and ran == ["committed", "attempt 2"]
    assert not after_commit("outside", lambda: ran.append("outside")) and ran[-1] == "attempt 2"


def _auth(db, feed: PromptFeed) -> SimpleNamespace:
    """What `enqueue` uses of auth's context."""
    return SimpleNamespace(db=db, clock=SystemClock(), prompt_feed=feed, at_commit=at_commit,
                           field_cipher=FieldCipher(Keyring.from_env_value(new_key_value("k1"))))


async def test_a_prompt_queued_here_reaches_the_open_streams_at_its_commit(scratch_database):
    # The feed is not running: no change stream, no polling. Only the announcement can bring the prompt.
    feed = PromptFeed(scratch_database, SystemClock())
    mine = feed.subscribe("acc-mine")
    auth = _auth(scratch_database, feed)
    request = approval_request("acc-mine")

    async def queue_it(session):
        await enqueue(auth, session, request)
        assert mine.empty()  # not before the commit: the phone would fetch a prompt not there yet

    await in_transaction(scratch_database.client, queue_it)
    notice = mine.get_nowait()
    assert notice["approval_id"] == request.approval_id and notice["kind"] == "test"
    assert (await scratch_database[APPROVALS].find_one({"_id": request.approval_id}))["status"] == "pending"

    await in_transaction(scratch_database.client, lambda session: enqueue(auth, session, request))
    assert mine.empty()  # the same approval id again: nothing queued, nothing announced

    other = approval_request("acc-mine")

    async def fails(session):
        await enqueue(auth, session, other)
        raise _Refused

    with pytest.raises(_Refused):
        await in_transaction(scratch_database.client, fails)
    assert mine.empty() and await scratch_database[APPROVALS].find_one({"_id": other.approval_id}) is None

    await enqueue(auth, None, approval_request("acc-nobody-listens"))  # only to that account's streams
    assert mine.empty()
    outside = approval_request("acc-mine")
    await enqueue(auth, None, outside)  # written outside a transaction: announced at once
    assert mine.get_nowait()["approval_id"] == outside.approval_id

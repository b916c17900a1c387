"""The timed sweeps' queries are served by an index that leads with their equality fields and then their range
field: the local database otherwise serves such a query from the TTL index's range alone and decodes every document
ever expired (auth's expired-prompt sweep: 1 s a pass, every 5 s, with 10,400 stored prompts; 1 ms with the index)."""

from __future__ import annotations

import pytest

from services.auth.collections import APPROVALS
from services.auth.collections import INDEXES as AUTH_INDEXES
from services.notify.collections import INDEXES as NOTIFY_INDEXES
from services.notify.collections import JOBS, NOTIFICATIONS

# (indexes of the service, collection, equality fields, range field) of each timed sweep's query.
SWEEPS = [
    (AUTH_INDEXES, APPROVALS, ("status",), "expires_at"),  # services/auth/housekeeping.py expire_prompts
    (NOTIFY_INDEXES, NOTIFICATIONS, ("status",), "due_at"),  # services/notify/sweeps.py
    (NOTIFY_INDEXES, JOBS, ("status",), "updated_at"),
]


def served(indexes, collection: str, equality: tuple[str, ...], range_field: str) -> bool:
    wanted = [*equality, range_field]
    return any(spec.collection == collection and [key for key, _ in spec.keys][:len(wanted)] == wanted
               for spec in indexes)


@pytest.mark.parametrize(("indexes", "collection", "equality", "range_field"), SWEEPS)
def test_each_sweep_query_has_an_index_leading_with_its_fields(indexes, collection, equality, range_field):
    assert served(indexes, collection, equality, range_field), f"{collection}: no index on {equality} then {range_field}"


def test_the_ttl_index_alone_does_not_count():
    # The range field's own (TTL) index is what the database fell back to: it must not satisfy the check.
    ttl_only = [spec for spec in AUTH_INDEXES if spec.collection == APPROVALS and len(spec.keys) == 1]
    assert ttl_only and not served(ttl_only, APPROVALS, ("status",), "expires_at")

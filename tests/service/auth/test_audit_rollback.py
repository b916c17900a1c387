"""An audit record is written in the transaction of the change it records: a change that fails leaves none."""

from __future__ import annotations

import pytest

from services.auth.identity.accounts import change_state

from ...support.auth_stand_in import published
from .oidc_steps import audits


class LaterStepFailed(Exception):
    """A step after the audit record's write, in the same transaction (as closure's writes follow change_state's)."""


async def test_a_failed_change_leaves_no_audit_record_and_a_committed_one_leaves_one(auth_service, tmp_path):
    phone = await auth_service.citizen(tmp_path)
    account_id, ctx = phone.profile.account_id, auth_service.context

    async def suspend_then_fail(session) -> None:
        await change_state(ctx, session, account_id, "suspended", reason="reported lost", actor="operator:wong.k")
        raise LaterStepFailed

    with pytest.raises(LaterStepFailed):
        await ctx.transaction(suspend_then_fail)
    assert (await ctx.db["accounts"].find_one({"_id": account_id}))["state"] == "active"
    assert await audits(auth_service, account_id, "identity.state_change") == []
    assert [e for e in await published(ctx, "identity.state_changed", account_id) if e.data["to"] == "suspended"] == []

    await ctx.transaction(lambda session: change_state(ctx, session, account_id, "suspended", reason="reported lost",
                                                       actor="operator:wong.k"))
    assert await audits(auth_service, account_id, "identity.state_change") == [{
        "action": "identity.state_change", "actor": "operator:wong.k", "outcome": "success", "reason": "reported lost",
        "from": "active", "to": "suspended"}]
    # The operator's free text stays in the audit record: the identity topic says only who changed it.
    [changed] = [e for e in await published(ctx, "identity.state_changed", account_id) if e.data["to"] == "suspended"]
    assert changed.data["reason"] == "changed by the operator"

"""An account closed (identity.state_changed to `closed`): notify deletes what it held for the citizen."""

from __future__ import annotations

from tests.support.auth_stand_in import published, state_changed


async def test_closing_the_account_deletes_inbox_preferences_and_contacts_and_shreds_what_was_sent(notify):
    agency = await notify.agency()
    citizen, other = await notify.citizen(agency), await notify.citizen(agency)
    await notify.preferences(citizen, {"channels": ["inbox", "push", "email"], "email": "tai.man@example.hk"})
    mine = await notify.delivered(agency, citizen)
    theirs = await notify.delivered(agency, other)
    db = notify.ctx.db
    assert await db["inbox"].count_documents({"account_id": citizen.account_id}) >= 1
    assert await db["preferences"].count_documents({"_id": citizen.account_id}) == 1

    await notify.learn(state_changed(citizen.account_id, was="active", to="closed"))

    assert await db["inbox"].count_documents({"account_id": citizen.account_id}) == 0
    assert await db["preferences"].count_documents({"_id": citizen.account_id}) == 0
    assert await db["channel_messages"].count_documents({"notification_id": mine["notification_id"]}) == 0
    assert await db["pushes"].count_documents({"account_id": citizen.account_id}) == 0
    assert await db["push_log"].count_documents({"account_id": citizen.account_id}) == 0
    notification = await db["notifications"].find_one({"_id": mine["notification_id"]})
    assert "sealed" not in notification and notification["shredded_at"] is not None  # the agency's record, no content
    assert (await notify.status(agency, mine["notification_id"]))["status"] == mine["status"]
    assert (await db["accounts"].find_one({"_id": citizen.account_id}))["state"] == "closed"
    [audit] = [e for e in await published(notify.ctx, "audit.recorded", citizen.account_id) if e.data["action"] == "notify.forget"]
    assert audit.data["preferences"] == 1 and audit.data["inbox"] >= 1 and audit.data["notifications_shredded"] >= 1
    # The other citizen keeps everything.
    assert await db["inbox"].count_documents({"account_id": other.account_id}) >= 1
    assert "sealed" in await db["notifications"].find_one({"_id": theirs["notification_id"]})
    # A message to the closed account's sub afterwards is not delivered.
    after = await notify.delivered(agency, citizen)
    assert after["status"] == "failed" and await db["inbox"].count_documents({"account_id": citizen.account_id}) == 0

"""The data tracker's view of one ledger record: what kind it is and what of it concerns this citizen."""

from __future__ import annotations

from services.signing.ledger.tracker import _own_part, kind_of


def test_a_notification_chunk_shows_the_citizen_only_their_own_notification():
    record = {"subject": "client-agency", "data": {"action": "notification.send", "actor": "client-agency",
                                                    "client_id": "client-agency", "notifications": [
        {"account_id": "acct-me", "notification_id": "n-1", "template_id": "t-1", "channel": "inbox"},
        {"account_id": "acct-other", "notification_id": "n-2", "template_id": "t-1", "channel": "inbox"}]}}
    mine = _own_part(record, "acct-me")
    assert mine["notification_id"] == "n-1" and "notifications" not in mine
    assert "acct-other" not in repr(mine) and "n-2" not in repr(mine)


def test_a_count_named_notifications_is_not_a_chunk():
    # data.export counts what each part held: `notifications` is a number there (a schemathesis run found the 500).
    record = {"subject": "acct-me", "data": {"action": "data.export", "actor": "dev-1", "notifications": 3}}
    assert _own_part(record, "acct-me")["notifications"] == 3


def test_operator_actions_are_their_own_kind_whatever_the_action():
    assert kind_of("identity.state_change", "operator:wong.k") == "operator"
    assert kind_of("login", "dev-1") == "login"
    assert kind_of("formfill.release", "dev-1") == "release"
    assert kind_of("device.rename", "dev-1") == "device"

"""The revocation list every service keeps (libs/revocation/projection.py) and notify's stream rules: pure logic."""

from __future__ import annotations

from libs.revocation import RevocationList, subject_hash
from libs.revocation.projection import ACCOUNT_CHANGED, DEVICE_REVOKED, TOKENS_REVOKED
from libs.service.streams import StreamSlots, end_reason

NOW = 1_000_000.0


def token(**claims) -> dict:
    return {"sub": "citizen-1", "jti": "jti-1", "iat": int(NOW) - 60, "exp": int(NOW) + 540, **claims}


def test_a_revoked_token_is_refused_until_its_revocation_expires():
    revocations = RevocationList()
    revocations.apply(TOKENS_REVOKED, {"jtis": ["jti-1"], "expires_at": NOW + 600}, now=NOW)
    assert revocations.refusal(token(), now=NOW) == "the token has been revoked"
    assert revocations.refusal(token(jti="jti-2"), now=NOW) is None
    assert revocations.refusal(token(), now=NOW + 601) is None
    assert revocations.prune(now=NOW + 601) == 1 and len(revocations) == 0


def test_a_revoked_device_refuses_every_token_of_that_device():
    revocations = RevocationList()
    revocations.apply(DEVICE_REVOKED, {"device_id": "dev-1", "expires_at": NOW + 660}, now=NOW)
    assert revocations.refusal(token(device_id="dev-1", jti="any"), now=NOW) == "the device has been revoked"
    assert revocations.refusal(token(device_id="dev-2", jti="any"), now=NOW) is None


def test_events_whose_tokens_have_all_expired_are_not_kept():
    revocations = RevocationList()
    revocations.apply(TOKENS_REVOKED, {"jtis": ["old"], "expires_at": NOW - 1}, now=NOW)
    revocations.apply(DEVICE_REVOKED, {"device_id": "old", "expires_at": NOW - 1}, now=NOW)
    assert len(revocations) == 0


def test_a_suspended_account_is_refused_and_reinstatement_keeps_refusing_older_tokens():
    revocations = RevocationList()
    suspended_at = NOW - 10
    event = {"subjects": [subject_hash("citizen-1"), subject_hash("pairwise-sub")], "at": suspended_at, "expires_at": NOW + 600}
    revocations.apply(ACCOUNT_CHANGED, {**event, "state": "suspended"}, now=NOW)
    assert revocations.refusal(token(), now=NOW) == "the citizen's account is not active"
    assert revocations.refusal(token(sub="pairwise-sub"), now=NOW) == "the citizen's account is not active"
    # Issued during the suspension (auth should not): still refused while it lasts.
    assert revocations.refusal(token(iat=int(NOW)), now=NOW) is not None
    assert revocations.refusal(token(sub="someone-else"), now=NOW) is None

    revocations.apply(ACCOUNT_CHANGED, {**event, "state": "active", "at": NOW - 5}, now=NOW)
    assert revocations.refusal(token(iat=int(suspended_at) - 1), now=NOW) == "the token was issued before the citizen's account was suspended"
    assert revocations.refusal(token(iat=int(NOW)), now=NOW) is None


def test_a_reinstatement_without_a_suspension_changes_nothing():
    revocations = RevocationList()
    revocations.apply(ACCOUNT_CHANGED, {"subjects": [subject_hash("citizen-1")], "state": "active", "at": NOW, "expires_at": NOW + 600}, now=NOW)
    assert len(revocations) == 0 and revocations.refusal(token(), now=NOW) is None


def test_subject_hashes_do_not_reveal_the_subject():
    assert subject_hash("citizen-1") != subject_hash("citizen-2")
    assert "citizen-1" not in subject_hash("citizen-1") and len(subject_hash("citizen-1")) == 64


def test_stream_slots_per_device():
    slots = StreamSlots(per_device=3)
    assert [slots.take("dev-1") for _ in range(4)] == [True, True, True, False]
    assert slots.take("dev-2")
    slots.give_back("dev-1")
    assert slots.take("dev-1") and not slots.take("dev-1")


def test_a_stream_ends_when_its_token_expires_or_is_revoked():
    revocations = RevocationList()
    claims = token(device_id="dev-1")
    assert end_reason(claims, revocations, now=NOW) is None
    assert end_reason(claims, revocations, now=claims["exp"]) == "the device token has expired"
    revocations.apply(DEVICE_REVOKED, {"device_id": "dev-1", "expires_at": NOW + 660}, now=NOW)
    assert end_reason(claims, revocations, now=NOW) == "the device has been revoked"

"""A decision is judged by when the citizen made it (auth's `decided_at`), not when it is processed: the pure rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.approvals import DecisionRejected, decision_time, sign_decision, verify_decision, verify_recorded_decision
from libs.tokens import InvalidToken, generate_private_key, sign, verify

from ..support.prompts import fixed_request

EXPIRES = datetime(2030, 1, 1, 8, 5, tzinfo=UTC)
KEY = generate_private_key()
PROMPT = fixed_request(expires_at=EXPIRES)


def judged(decided_at: datetime | str | None, *, now: datetime, signed_at: datetime | None = None,
           published_at: datetime | None = None, decision: str = "approve"):
    """The decision the phone signed at `signed_at` (default: when auth recorded it), judged as formfill and signing do."""
    signed = signed_at or (decided_at if isinstance(decided_at, datetime) else EXPIRES - timedelta(seconds=60))
    token = sign_decision(KEY, device_id="dev-1", approval_id=PROMPT.approval_id, digest=PROMPT.digest(),
                          decision=decision, now=signed)  # type: ignore[arg-type]
    recorded = decided_at.isoformat() if isinstance(decided_at, datetime) else decided_at
    if published_at is None:
        published_at = decided_at if isinstance(decided_at, datetime) else EXPIRES
    return verify_recorded_decision(token, KEY.public_key(), approval_id=PROMPT.approval_id, digest=PROMPT.digest(),
                                    expires_at=EXPIRES, decided_at=recorded, published_at=published_at, now=now)


def refusal(*args, **kwargs) -> str:
    with pytest.raises(DecisionRejected) as refused:
        judged(*args, **kwargs)
    return refused.value.reason


def test_a_decision_made_in_time_stands_however_late_it_is_processed():
    decided = EXPIRES - timedelta(seconds=1)
    for late in (timedelta(0), timedelta(minutes=5), timedelta(hours=6), timedelta(days=3)):
        claims, at = judged(decided, now=decided + late, published_at=decided + timedelta(milliseconds=3))
        assert (claims.decision, at) == ("approve", decided)
    assert judged(decided, now=decided + timedelta(hours=1), decision="deny")[0].decision == "deny"


def test_by_processing_time_the_same_decision_would_have_been_refused():
    """What went wrong before: the decision's JWS (120 s) judged when the event is processed, 5 minutes later."""
    decided = EXPIRES - timedelta(seconds=10)
    token = sign_decision(KEY, device_id="dev-1", approval_id=PROMPT.approval_id, digest=PROMPT.digest(), decision="approve", now=decided)
    with pytest.raises(DecisionRejected, match="expired"):
        verify_decision(token, KEY.public_key(), approval_id=PROMPT.approval_id, digest=PROMPT.digest(), at=decided + timedelta(minutes=5))
    assert verify_decision(token, KEY.public_key(), approval_id=PROMPT.approval_id, digest=PROMPT.digest(), at=decided).decision == "approve"


def test_a_decision_made_at_or_after_the_expiry_is_refused_however_soon_it_is_processed():
    for decided in (EXPIRES, EXPIRES + timedelta(microseconds=1), EXPIRES + timedelta(seconds=30)):
        assert refusal(decided, now=decided) == "expired"


def test_the_device_signature_must_have_been_valid_when_auth_recorded_the_decision():
    decided = EXPIRES - timedelta(seconds=10)
    # Signed 151 s before auth received it: its 120 s lifetime and the 30 s leeway had run out.
    assert refusal(decided, now=decided, signed_at=decided - timedelta(seconds=151)) == "bad-signature"
    assert judged(decided, now=decided, signed_at=decided - timedelta(seconds=149))[1] == decided
    # Signed after auth says it received it (beyond the leeway): the recorded time cannot be that early.
    assert refusal(decided - timedelta(seconds=31), now=decided, signed_at=decided) == "bad-signature"
    assert judged(decided - timedelta(seconds=30), now=decided, signed_at=decided)[1] == decided - timedelta(seconds=30)


def test_the_recorded_time_cannot_follow_its_own_event_nor_lie_in_the_future():
    decided = EXPIRES - timedelta(seconds=60)
    assert refusal(decided, now=decided, published_at=decided - timedelta(microseconds=1)) == "bad-time"
    assert judged(decided, now=decided, published_at=decided)[1] == decided
    # Two machines' clocks: up to 30 s ahead of the processing service is skew, beyond that it is wrong.
    assert judged(decided, now=decided - timedelta(seconds=30))[1] == decided
    assert refusal(decided, now=decided - timedelta(seconds=31)) == "bad-time"


@pytest.mark.parametrize("recorded", [None, "", "yesterday", "2030-01-01T08:00:00", 1893484800, ["2030-01-01T08:00:00Z"]])
def test_a_decision_without_a_recorded_aware_time_is_refused(recorded):
    assert refusal(recorded, now=EXPIRES) == "malformed"


def test_decision_time_reads_rfc3339_with_an_offset():
    at = decision_time("2030-01-01T16:04:00+08:00", published_at=EXPIRES, now=EXPIRES)
    assert at == datetime(2030, 1, 1, 8, 4, tzinfo=UTC)


def test_token_times_are_judged_at_the_instant_given():
    then = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    stamp = int(then.timestamp())
    token = sign({"iat": stamp, "nbf": stamp, "exp": stamp + 120}, KEY)
    assert verify(token, KEY.public_key(), now=then + timedelta(seconds=149))["exp"] == stamp + 120
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, KEY.public_key(), now=then + timedelta(seconds=150))
    with pytest.raises(InvalidToken, match="not yet valid"):
        verify(token, KEY.public_key(), now=then - timedelta(seconds=31))
    with pytest.raises(InvalidToken, match="not yet valid"):
        verify(token, KEY.public_key())  # by the wall clock: 2030 has not come yet
    with pytest.raises(InvalidToken, match="integer"):
        verify(sign({"iat": stamp, "exp": "soon"}, KEY), KEY.public_key(), now=then)

"""libs.clock: the seam that lets tests move time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from libs.clock import Clock, FrozenClock, SystemClock

START = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def test_system_clock_is_aware_utc_and_current():
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_both_clocks_satisfy_the_protocol():
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FrozenClock(START), Clock)


def test_frozen_clock_stands_still():
    clock = FrozenClock(START)
    assert clock.now() == clock.now() == START


def test_frozen_clock_advances_by_seconds_or_any_timedelta_unit():
    clock = FrozenClock(START)
    assert clock.advance(90) == START + timedelta(seconds=90)
    assert clock.advance(minutes=5) == START + timedelta(seconds=390)
    assert clock.advance(hours=1, seconds=0.5) == START + timedelta(seconds=3990.5)
    assert clock.now() == START + timedelta(seconds=3990.5)


def test_frozen_clock_never_goes_back():
    clock = FrozenClock(START)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(START - timedelta(seconds=1))
    assert clock.now() == START


def test_frozen_clock_set_jumps_forward_in_utc():
    clock = FrozenClock(START)
    hong_kong = timezone(timedelta(hours=8))
    clock.set(datetime(2025, 3, 1, 18, 30, tzinfo=hong_kong))
    assert clock.now() == START + timedelta(hours=1)
    assert clock.now().utcoffset() == timedelta(0)


def test_frozen_clock_refuses_naive_instants():
    with pytest.raises(ValueError):
        FrozenClock(datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        FrozenClock(START).set(datetime(2026, 1, 1))


def test_frozen_clock_starts_now_by_default_and_normalises_to_utc():
    assert abs(FrozenClock().now() - datetime.now(UTC)) < timedelta(seconds=5)
    eight = timezone(timedelta(hours=8))
    assert FrozenClock(datetime(2025, 1, 1, 8, tzinfo=eight)).now() == datetime(2025, 1, 1, tzinfo=UTC)

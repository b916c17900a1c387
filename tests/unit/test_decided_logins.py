"""Logins kept in auth's memory (services/auth/oidc/decided.py): each only for its fixed time (a decided one:
until its code expires)."""

from services.auth.remembered import Remembered


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_login_is_recalled_until_its_code_expires():
    clock = Clock()
    decided = Remembered(clock=clock)
    decided.remember("db", "tx-1", {"status": "approved"}, for_s=60)
    clock.now += 59
    assert decided.recall("db", "tx-1") == {"status": "approved"}
    assert decided.recall("other-db", "tx-1") is None
    clock.now += 1
    assert decided.recall("db", "tx-1") is None


def test_expired_logins_are_dropped_as_new_ones_come_not_only_at_the_limit():
    """A busy auth decided thousands of logins a minute; with expired ones dropped only past the limit it held the
    last 10,000 login documents for ever (auth 80 -> 111 MB over 4,000 logins)."""
    clock = Clock()
    decided = Remembered(clock=clock)
    for i in range(100):
        decided.remember("db", f"tx-{i}", {"n": i}, for_s=60)
        clock.now += 1  # a login a second
    assert len(decided) == 60  # the codes of the first 40 expired as the last logins came
    decided.remember("db", "tx-new", {"n": "new"}, for_s=60)  # 100 s after the first: tx-0 .. tx-40 have expired
    assert len(decided) == 60
    assert decided.recall("db", "tx-40") is None and decided.recall("db", "tx-41") == {"n": 41}
    clock.now += 60
    assert decided.recall("db", "tx-new") is None
    assert len(decided) == 0


def test_the_limit_still_bounds_a_burst():
    clock = Clock()
    decided = Remembered(limit=100, clock=clock)
    for i in range(150):
        decided.remember("db", f"tx-{i}", {"n": i}, for_s=60)
    assert len(decided) == 100
    assert decided.recall("db", "tx-49") is None and decided.recall("db", "tx-50") == {"n": 50}


def test_a_redeemed_login_is_forgotten_at_once():
    decided = Remembered(clock=Clock())
    decided.remember("db", "tx-1", {"n": 1}, for_s=60)
    decided.remember("db", "tx-2", {"n": 2}, for_s=60)
    decided.forget("db", "tx-1")
    decided.forget("db", "tx-unknown")  # another replica's login, or one forgotten already: nothing to do
    assert decided.recall("db", "tx-1") is None and decided.recall("db", "tx-2") == {"n": 2}
    assert len(decided) == 1

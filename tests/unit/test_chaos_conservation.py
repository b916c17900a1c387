"""bench/chaos.py's conservation rule for logins, on the view it reads: exactly one authorization code per approved
login, wherever auth keeps it (the login's own document since fca3612, `authorization_codes` before), and it is the
code the phone's approval returned."""

import hashlib
from datetime import UTC, datetime

from bench.chaos import Chaos, Phase, Unit


def check(codes: dict[str, list[str]], code_hash: str | None) -> dict:
    phase = Phase("none", "t", datetime.now(UTC))
    phase.units.append(Unit("login", "tx1", approval_id="login-tx1", decided=True, code_hash=code_hash))
    view = {"approvals": {"login-tx1": "approved"}, "codes": codes, "notifications": [], "inbox": {}, "outbox": []}
    return Chaos.__new__(Chaos).work_check(phase, view, None)


def test_one_code_the_phone_was_given_is_clean():
    given = hashlib.sha256(b"tx1.secret").hexdigest()
    work = check({"tx1": [given]}, given)
    assert (work["lost"], work["dup"], work["accepted"]["login"]) == ([], [], 1)


def test_no_code_is_lost():
    assert check({}, None)["lost"] == ["login tx1: approved, no authorization code"]


def test_a_code_in_each_place_is_two_codes():
    given = hashlib.sha256(b"tx1.secret").hexdigest()
    assert check({"tx1": ["an-old-shape-code", given]}, given)["dup"] == ["login tx1: 2 authorization codes"]


def test_another_code_than_the_phones_is_a_second_issue():
    work = check({"tx1": [hashlib.sha256(b"tx1.other").hexdigest()]}, hashlib.sha256(b"tx1.secret").hexdigest())
    assert work["dup"] == ["login tx1: auth holds another code than the one the phone was given (issued again)"]

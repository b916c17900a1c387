"""The example agency consumer's memory of handled event ids: bounded in memory and in its file, kept across restarts."""

from __future__ import annotations

import sqlite3

import pytest

from clients.agency_consumer import SeenIds


def test_memory_keeps_the_most_recently_seen_ids():
    seen = SeenIds(capacity=2)
    seen.add("a")
    seen.add("b")
    assert "a" in seen  # touched: now the most recent
    seen.add("c")  # forgets b, the least recently seen
    assert ("a" in seen, "b" in seen, "c" in seen) == (True, False, True)


def test_the_file_remembers_across_restarts_and_keeps_only_the_last_ids(tmp_path):
    path = tmp_path / "seen.sqlite3"
    seen = SeenIds(capacity=3, path=path)
    for event_id in ["e1", "e2", "e3", "e4", "e4"]:
        seen.add(event_id)
    seen.close()

    restarted = SeenIds(capacity=3, path=path)
    assert [e for e in ["e1", "e2", "e3", "e4", "e5"] if e in restarted] == ["e2", "e3", "e4"]
    restarted.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM seen").fetchone() == (3,)


def test_a_capacity_below_one_is_refused():
    with pytest.raises(ValueError):
        SeenIds(capacity=0)

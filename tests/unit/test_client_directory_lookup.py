"""directory_of: the client directory of the database asked about, however often and in whatever order."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from services.auth.clients import directory as module


def test_each_database_gets_its_own_directory_and_a_forgotten_one_none():
    client = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    first, second = client["auth_a"], client["auth_b"]
    one, two = object(), object()
    try:
        module._registered(first, one)
        assert module.directory_of(first) is one
        assert module.directory_of(second) is None  # asked last now: remembered as having none
        module._registered(second, two)
        assert [module.directory_of(db) for db in (second, first, first, second)] == [two, one, one, two]
        assert module.directory_of(client["auth_a"]) is one  # an equal database object, not the same one
        module._registered(first, None)
        assert module.directory_of(first) is None and module.directory_of(second) is two
    finally:
        module._registered(first, None)
        module._registered(second, None)

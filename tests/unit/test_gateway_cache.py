"""The gateway's shared cache, its rules alone (services/gateway/cache.py): what may be stored, for how long,
which requests may use it, and its bound."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from services.gateway.cache import SharedCache, Wanted, directives, freshness, request_may_use_cache, request_wants
from services.gateway.routes import ROUTES, match


def test_directives_are_read_case_insensitively_with_quotes_removed():
    assert directives('Public, MAX-AGE="60", no-transform') == {"public": None, "max-age": "60", "no-transform": None}
    assert directives(None) == {} and directives(" , ") == {}


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (200, [("Cache-Control", "max-age=300")], 300),
    (200, [("cache-control", "public"), ("Cache-Control", "max-age=60")], 60),  # repeated fields are one list
    (200, [("Cache-Control", "max-age=300, s-maxage=20")], 20),  # a shared cache reads s-maxage first
    (200, [("Cache-Control", "max-age=300"), ("Age", "100")], 200),
    (200, [("Cache-Control", "max-age=300"), ("Age", "300")], None),  # spent on the way
    (200, [("Cache-Control", "max-age=300"), ("Age", "-5")], 300),  # an invalid Age counts as none
    (200, [("Cache-Control", "max-age=-1")], None),
    (200, [("Cache-Control", "max-age=1e3")], None),
    (200, [("Cache-Control", "max-age=٣")], None),  # digits, ASCII ones only
    (200, [("Cache-Control", "public")], None),  # no explicit lifetime: no heuristic freshness here
    (200, [], None),
    (404, [("Cache-Control", "max-age=300")], None),
    (200, [("Cache-Control", "max-age=300, private")], None),
    (200, [("Cache-Control", "max-age=300, No-Store")], None),
    (200, [("Cache-Control", 'max-age=300, no-cache="Set-Cookie"')], None),
    (200, [("Cache-Control", "max-age=300"), ("set-cookie", "a=b")], None),
    (200, [("Cache-Control", "max-age=300"), ("Vary", "*")], None),
])
def test_lifetime_is_what_the_service_allows_a_shared_cache(status, headers, expected):
    found = freshness(status, headers)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(("method", "query", "headers", "expected"), [
    ("GET", "", {}, True),
    ("GET", "", {"Accept": "application/json", "User-Agent": "rp"}, True),
    ("HEAD", "", {}, False),
    ("POST", "", {}, False),
    ("GET", "a=1", {}, False),
    ("GET", "", {"authorization": "Bearer x"}, False),
    ("GET", "", {"COOKIE": "a=b"}, False),
    ("GET", "", {"DPoP": "x"}, False),
    ("GET", "", {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}, False),
    ("GET", "", {"Range": "bytes=0-1"}, False),
])
def test_only_anonymous_unconditional_gets_without_a_query_use_the_cache(method, query, headers, expected):
    assert request_may_use_cache(method, query, CIMultiDict(headers)) is expected


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, Wanted()),
    ({"Cache-Control": "max-age=30"}, Wanted(max_age_s=30)),
    ({"Cache-Control": "min-fresh=20, max-age=30"}, Wanted(max_age_s=30, min_fresh_s=20)),
    ({"Cache-Control": "max-age=x"}, Wanted()),  # invalid: as if absent
    ({"Cache-Control": "no-cache"}, Wanted(refetch=True)),
    ({"Cache-Control": "max-age=0"}, Wanted(refetch=True, max_age_s=0)),
    ({"Pragma": "no-cache"}, Wanted(refetch=True)),
    ({"Pragma": "no-cache", "Cache-Control": "max-age=30"}, Wanted(max_age_s=30)),  # Cache-Control wins (RFC 9111 §5.4)
    ({"Cache-Control": "no-store"}, Wanted(refetch=True, store=False)),
])
def test_the_callers_directives(headers, expected):
    assert request_wants(CIMultiDict(headers)) == expected


def test_a_copy_too_old_for_the_caller_is_not_served_to_that_caller_nor_dropped():
    now = [0.0]
    cache = SharedCache(2, clock=lambda: now[0])
    cache.store(("h", "/d"), 200, "OK", [("Cache-Control", "max-age=60")], b"x")
    now[0] = 40.0
    assert cache.fresh(("h", "/d"), Wanted(max_age_s=30)) is None
    assert cache.fresh(("h", "/d"), Wanted(max_age_s=40)) is not None
    assert cache.fresh(("h", "/d"), Wanted(min_fresh_s=21)) is None  # 20 s of freshness left
    assert cache.fresh(("h", "/d"), Wanted(min_fresh_s=20)) is not None
    assert cache.fresh(("h", "/d")) is not None and len(cache) == 1


def test_entries_are_bounded_least_recently_used_first_and_expire():
    now = [0.0]
    cache = SharedCache(2, clock=lambda: now[0])
    for path in ("/a", "/b"):
        cache.store(("h", path), 200, "OK", [("Cache-Control", "max-age=10")], b"x")
    assert cache.fresh(("h", "/a")) is not None  # /a used: /b is now the least recently used
    cache.store(("h", "/c"), 200, "OK", [("Cache-Control", "max-age=10")], b"x")
    assert [cache.fresh(("h", p)) is not None for p in ("/a", "/b", "/c")] == [True, False, True]
    now[0] = 10.0
    assert cache.fresh(("h", "/a")) is None and len(cache) == 1


def test_an_entry_keeps_the_document_not_the_exchange():
    cache = SharedCache(4, clock=lambda: 0.0)
    entry = cache.store(("h", "/d"), 200, "OK", [("Cache-Control", "max-age=10"), ("X-Request-Id", "r1"),
                                                 ("Content-Length", "1"), ("Age", "2"), ("Content-Type", "a/b")], b"x")
    assert entry.headers == (("Cache-Control", "max-age=10"), ("Content-Type", "a/b"))
    assert (entry.lifetime_s, entry.age_s(0.0), entry.age_s(3.5)) == (8, 2, 5)


def test_too_large_or_disabled_is_not_stored():
    assert SharedCache(4).store(("h", "/big"), 200, "OK", [("Cache-Control", "max-age=10")], b"x" * 65537) is None
    assert SharedCache(0).store(("h", "/d"), 200, "OK", [("Cache-Control", "max-age=10")], b"x") is None


def test_the_routes_marked_cacheable_are_public_documents_only():
    cacheable = {r.pattern for r in ROUTES if r.cacheable}
    assert cacheable == {"/.well-known/openid-configuration", "/.well-known/assetlinks.json",
                         "/.well-known/apple-app-site-association"}
    assert all(r.policy.kind == "public" and not r.long_lived for r in ROUTES if r.cacheable)
    # Each is reached by its own row, not shadowed by a broader one above it.
    assert all(match("GET", pattern).cacheable for pattern in cacheable)
    # The key sets change with a rotation, at once: never from the gateway's memory.
    assert not any(match("GET", path).cacheable for path in ("/oidc/jwks", "/v1/signing/jwks", "/v1/formfill/jwks",
                                                              "/v1/notifications/jwks"))

"""libs/tokens JWKSCache: one fetch-and-cache for auth's JWKS and clients' jwks_uri."""

from __future__ import annotations

import pytest

from libs.tokens import JWKSCache, JWKSUnavailable, generate_private_key, public_jwk, sign

URL = "https://publisher.example/jwks"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("libs.tokens.jwks_cache.time.monotonic", clock)
    return clock


class Publisher:
    def __init__(self, *jwks: dict) -> None:
        self.keys, self.down, self.calls = list(jwks), False, 0

    async def __call__(self, url: str):
        assert url == URL
        self.calls += 1
        if self.down:
            raise JWKSUnavailable("refused")
        return {"keys": self.keys}


def jwk(kid: str) -> dict:
    return {**public_jwk(generate_private_key()), "kid": kid}


async def test_the_document_is_kept_for_its_age_and_unknown_kids_fetch_at_most_once_per_interval(clock):
    publisher = Publisher(jwk("k1"))
    cache = JWKSCache(URL, fetch=publisher, max_age_s=300, min_refresh_s=10)
    assert await cache.key("k1") is not None and publisher.calls == 1
    assert await cache.key("k1") is not None and publisher.calls == 1
    clock.now += 11
    for _ in range(5):  # invented key ids: one fetch, not five
        assert await cache.key("invented") is None
    assert publisher.calls == 2
    publisher.keys.append(jwk("k2"))
    clock.now += 11  # a rotated key is found once the interval has passed
    assert await cache.key("k2") is not None and publisher.calls == 3
    clock.now += 301
    await cache.jwks()
    assert publisher.calls == 4


async def test_auth_keys_keep_verifying_while_the_publisher_is_down(clock):
    private = generate_private_key()
    publisher = Publisher({**public_jwk(private), "kid": "k1"})
    cache = JWKSCache(URL, fetch=publisher)
    token = sign({"sub": "s", "iss": "i", "aud": "a", "iat": 1, "exp": 2**31}, private, headers={"kid": "k1"})
    assert (await cache.verify(token, audience="a", issuer="i"))["sub"] == "s"
    publisher.down = True
    clock.now += 1000
    assert (await cache.verify(token, audience="a", issuer="i"))["sub"] == "s"


async def test_a_client_document_is_not_trusted_past_its_age(clock):
    publisher = Publisher(jwk("k1"))
    cache = JWKSCache(URL, fetch=publisher, max_age_s=300, min_refresh_s=10, serve_stale=False)
    assert [k["kid"] for k in await cache.jwks()] == ["k1"]
    publisher.down = True
    clock.now += 301
    with pytest.raises(JWKSUnavailable, match="refused"):
        await cache.jwks()
    with pytest.raises(JWKSUnavailable):  # within the interval: not fetched again, still refused
        await cache.jwks()
    assert publisher.calls == 2
    publisher.down = False
    clock.now += 11
    assert [k["kid"] for k in await cache.jwks()] == ["k1"]


async def test_a_malformed_document_has_no_keys(clock):
    async def garbage(url):
        return {"keys": ["not a key", {"kid": "x", "kty": "RSA"}, 7]}

    cache = JWKSCache(URL, fetch=garbage)
    assert await cache.key("x") is None and await cache.jwks() == [{"kid": "x", "kty": "RSA"}]


def access_token(key, kid: str, *, lifetime_s: int = 300, **claims) -> str:
    import time

    now = int(time.time())
    payload = {"iss": "https://issuer.example", "aud": "https://issuer.example", "sub": "s1", "iat": now,
               "exp": now + lifetime_s, "jti": "j1", **claims}
    return sign(payload, key, headers={"kid": kid, "typ": "at+jwt"})


class CountingVerify:
    def __init__(self, monkeypatch) -> None:
        import libs.tokens.jwks_cache as module

        self.calls, self._verify = 0, module.verify
        monkeypatch.setattr(module, "verify", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._verify(*args, **kwargs)


async def test_a_verified_token_is_remembered_until_it_expires(monkeypatch):
    key = generate_private_key()
    publisher = Publisher({**public_jwk(key), "kid": "k1"})
    cache = JWKSCache(URL, fetch=publisher, verified_cache_size=2)
    verify = CountingVerify(monkeypatch)
    token = access_token(key, "k1", lifetime_s=60)
    check = {"audience": "https://issuer.example", "issuer": "https://issuer.example", "typ": "at+jwt"}
    first = await cache.verify(token, **check)
    again = await cache.verify(token, **check)
    assert first == again and first["jti"] == "j1" and verify.calls == 1
    again["scope"] = "changed"  # a caller's copy: the remembered claims stay as verified
    assert "scope" not in await cache.verify(token, **check) and verify.calls == 1
    # Another audience is another question: verified, not answered from what was remembered for the first.
    with pytest.raises(Exception, match="audience"):
        await cache.verify(token, **{**check, "audience": "https://elsewhere.example"})
    # Past its expiry (and the leeway), the token is checked again, not answered from memory.
    import time as real_time

    later = real_time.time() + 60 + 31
    monkeypatch.setattr("libs.tokens.jwks_cache.time.time", lambda: later)
    await cache.verify(token, **check)  # the wall clock PyJWT reads still says valid: verified afresh
    assert verify.calls == 3


async def test_remembered_tokens_are_bounded_and_forgotten_with_their_key(clock, monkeypatch):
    key = generate_private_key()
    publisher = Publisher({**public_jwk(key), "kid": "k1"})
    cache = JWKSCache(URL, fetch=publisher, verified_cache_size=2, max_age_s=300, min_refresh_s=10)
    verify = CountingVerify(monkeypatch)
    check = {"audience": "https://issuer.example", "issuer": "https://issuer.example", "typ": "at+jwt"}
    tokens = [access_token(key, "k1", jti=f"j{n}") for n in range(3)]
    for token in tokens:
        await cache.verify(token, **check)
    assert len(cache._verified) == 2 and verify.calls == 3
    await cache.verify(tokens[0], **check)  # the least recently used was dropped: verified again
    assert verify.calls == 4
    # The key leaves the published document: what it signed is no longer answered from memory.
    publisher.keys = [jwk("k2")]
    clock.now += 301
    with pytest.raises(Exception, match="unknown key"):
        await cache.verify(tokens[0], **check)

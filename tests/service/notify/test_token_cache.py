"""notify remembers the access tokens it verified (HARBOUR_NOTIFY_TOKEN_CACHE_SIZE), as the gateway does.

An agency polling with the same token pays for one signature check, not one per request. That a remembered
token is still refused the moment auth revokes it, at notify itself as at formfill, signing and the gateway, is
tests/e2e/test_revocation.py's (each token there is used before it is revoked, so it is remembered first).
"""

from __future__ import annotations

import libs.tokens.jwks_cache as jwks_cache



async def test_the_same_token_is_verified_once_and_another_token_is_verified_afresh(notify, monkeypatch):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    verified = []
    real_verify = jwks_cache.verify
    monkeypatch.setattr(jwks_cache, "verify", lambda *a, **kw: verified.append(1) or real_verify(*a, **kw))

    token = notify.agency_token(agency)  # one token, presented four times
    for _ in range(4):
        response = await notify.http.get("/v1/templates", headers=token)
        assert response.status == 200, await response.text()
    assert len(verified) == 1
    assert notify.ctx.jwks.verified_cache_size == notify.ctx.settings.token_cache_size == 1024

    # A device token is an entry of its own, and a forged token is never taken from memory.
    device = await notify.http.get("/v1/inbox", headers=notify.device_token(citizen))
    assert device.status == 200 and len(verified) == 2
    good = token["Authorization"]
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    refused = await notify.http.get("/v1/templates", headers={"Authorization": forged})
    assert refused.status == 401 and len(verified) == 3

"""Tokens presented back to auth in process: userinfo, introspection, revocation."""

from __future__ import annotations

import aiohttp

from ...support.calls import bearer
from .oidc_steps import NO_STORE, approved_code, audits, client_auth, oauth_error, redeem, register, token_request


async def introspect(auth_service, rp: dict, token: str) -> dict:
    response = await auth_service.client.post("/oidc/introspect", data={"token": token},
                                              headers=client_auth(rp))
    assert response.status == 200 and {k: response.headers[k] for k in NO_STORE} == NO_STORE
    return await response.json()


async def test_userinfo_answers_a_logged_in_token_and_challenges_the_rest(auth_service, tmp_path):
    rp = await register(auth_service, scope="openid notify")
    code, verifier = await approved_code(auth_service, rp, await auth_service.citizen(tmp_path))
    tokens = await (await redeem(auth_service, rp, code, verifier)).json()
    for method in ("GET", "POST"):
        response = await auth_service.client.request(method, "/oidc/userinfo", headers=bearer(tokens["access_token"]))
        assert response.status == 200 and {k: response.headers[k] for k in NO_STORE} == NO_STORE
        info = await response.json()
        assert set(info) == {"sub", "assurance_level"} and info["assurance_level"] == "basic"

    missing = await auth_service.client.get("/oidc/userinfo")
    assert await oauth_error(missing, 401, "invalid_token") == "a bearer access token is required"
    assert missing.headers["WWW-Authenticate"] == 'Bearer error="invalid_token", error_description="a bearer access token is required"'
    forged = await auth_service.client.get("/oidc/userinfo", headers=bearer(tokens["access_token"][:-4] + "AAAA"))
    await oauth_error(forged, 401, "invalid_token")
    assert forged.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    own = await (await token_request(auth_service, rp, grant_type="client_credentials")).json()
    no_openid = await auth_service.client.get("/oidc/userinfo", headers=bearer(own["access_token"]))
    await oauth_error(no_openid, 403, "insufficient_scope")
    assert no_openid.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')


async def test_introspection_describes_only_the_callers_own_live_tokens(auth_service, clock, tmp_path):
    rp, other = await register(auth_service), await register(auth_service)
    code, verifier = await approved_code(auth_service, rp, await auth_service.citizen(tmp_path), scope="openid offline_access")
    tokens = await (await redeem(auth_service, rp, code, verifier)).json()

    access = await introspect(auth_service, rp, tokens["access_token"])
    assert access["active"] is True and access["token_type"] == "Bearer" and access["client_id"] == rp["client_id"]
    assert {"sub", "scope", "exp", "iat", "iss", "aud", "jti", "acr", "auth_time"} <= set(access)
    refresh = await introspect(auth_service, rp, tokens["refresh_token"])
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token" and refresh["sub"] == access["sub"]
    assert await introspect(auth_service, other, tokens["access_token"]) == {"active": False}
    assert await introspect(auth_service, rp, "not-a-token") == {"active": False}
    clock.advance(auth_service.context.settings.refresh_token_ttl_s)
    assert await introspect(auth_service, rp, tokens["refresh_token"]) == {"active": False}


async def test_revocation_answers_200_and_revokes_only_the_callers_tokens(auth_service, tmp_path):
    rp, other = await register(auth_service), await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    code, verifier = await approved_code(auth_service, rp, phone, scope="openid offline_access")
    tokens = await (await redeem(auth_service, rp, code, verifier)).json()

    async def revoke(client: dict, token: str) -> aiohttp.ClientResponse:
        return await auth_service.client.post("/oidc/revoke", data={"token": token},
                                              headers=client_auth(client))

    by_other = await revoke(other, tokens["refresh_token"])
    assert by_other.status == 200 and await by_other.read() == b""
    assert (await introspect(auth_service, rp, tokens["refresh_token"]))["active"] is True
    revoked = await revoke(rp, tokens["refresh_token"])
    assert revoked.status == 200 and {k: revoked.headers[k] for k in NO_STORE} == NO_STORE
    assert await introspect(auth_service, rp, tokens["refresh_token"]) == {"active": False}
    # The access token issued with it goes too.
    assert await introspect(auth_service, rp, tokens["access_token"]) == {"active": False}
    # On the citizen's record: the client revoked it (the other client's attempt revoked nothing, recorded nothing).
    assert await audits(auth_service, phone.profile.account_id, "token.revoke") == [{
        "action": "token.revoke", "actor": rp["client_id"], "outcome": "success", "client_id": rp["client_id"],
        "reason": "client-request", "refresh_tokens": 1, "access_tokens": 1}]
    unauthenticated = await auth_service.client.post("/oidc/revoke", data={"token": tokens["access_token"]})
    await oauth_error(unauthenticated, 401, "invalid_client")

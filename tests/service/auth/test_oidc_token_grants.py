"""The token endpoint in process: each grant, its lifetimes passed with the FrozenClock, and the errors it answers."""

from __future__ import annotations

from services.auth.oidc.decided import DECIDED
from services.auth.oidc.login import LOGIN_CODE_SEPARATOR

from .oidc_steps import NO_STORE, REDIRECT, approved_code, audits, basic, oauth_error, redeem, register, token_request


async def test_a_code_buys_tokens_once_and_a_replay_revokes_them(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    code, verifier = await approved_code(auth_service, rp, phone, scope="openid offline_access")
    login = (auth_service.context.db.name, code.split(LOGIN_CODE_SEPARATOR, 1)[0])
    assert DECIDED.recall(*login) is not None  # decided here: the exchange reads it from memory

    response = await redeem(auth_service, rp, code, verifier)
    assert response.status == 200 and {k: response.headers[k] for k in NO_STORE} == NO_STORE
    assert DECIDED.recall(*login) is None  # redeemed: out of memory; the replay below reads the login's document
    tokens = await response.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "scope", "id_token", "refresh_token"}
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "openid offline_access"

    replay = await redeem(auth_service, rp, code, verifier)
    assert "already used" in await oauth_error(replay, 400, "invalid_grant")
    # RFC 6749 §4.1.2: what the code issued is revoked with it.
    refresh = await token_request(auth_service, rp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert "revoked" in await oauth_error(refresh, 400, "invalid_grant")
    userinfo = await auth_service.client.get("/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status == 401 and 'error="invalid_token"' in userinfo.headers["WWW-Authenticate"]
    # The reuse detected, in the revocation's transaction, on the citizen's record.
    assert await audits(auth_service, phone.profile.account_id, "token.reuse_detected") == [{
        "action": "token.reuse_detected", "actor": "auth", "outcome": "success", "client_id": rp["client_id"],
        "reason": "code-replayed", "access_tokens": 1}]


async def test_a_code_expires_after_its_lifetime(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    code, verifier = await approved_code(auth_service, rp, await auth_service.citizen(tmp_path))
    clock.advance(auth_service.context.settings.code_ttl_s)
    assert await oauth_error(await redeem(auth_service, rp, code, verifier), 400, "invalid_grant") == "the code has expired"


async def test_a_code_needs_its_verifier_and_redirect_uri_and_its_own_client(auth_service, tmp_path):
    rp, other = await register(auth_service), await register(auth_service)
    code, verifier = await approved_code(auth_service, rp, await auth_service.citizen(tmp_path))
    wrong_verifier = await redeem(auth_service, rp, code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert "code_verifier" in await oauth_error(wrong_verifier, 400, "invalid_grant")
    wrong_redirect = await token_request(auth_service, rp, grant_type="authorization_code", code=code,
                                         redirect_uri=REDIRECT + "/other", code_verifier=verifier)
    assert "redirect_uri" in await oauth_error(wrong_redirect, 400, "invalid_grant")
    assert "another client" in await oauth_error(await redeem(auth_service, other, code, verifier), 400, "invalid_grant")
    # None of these refusals used the code up.
    assert (await redeem(auth_service, rp, code, verifier)).status == 200


async def test_a_refresh_token_rotates_and_a_reused_one_revokes_the_family(auth_service, tmp_path):
    rp = await register(auth_service)
    phone = await auth_service.citizen(tmp_path)
    code, verifier = await approved_code(auth_service, rp, phone, scope="openid offline_access")
    first = await (await redeem(auth_service, rp, code, verifier)).json()

    narrowed = await token_request(auth_service, rp, grant_type="refresh_token", refresh_token=first["refresh_token"],
                                   scope="offline_access")
    assert narrowed.status == 200
    second = await narrowed.json()
    assert second["scope"] == "offline_access" and "id_token" not in second and second["refresh_token"] != first["refresh_token"]

    wider = await token_request(auth_service, rp, grant_type="refresh_token", refresh_token=second["refresh_token"],
                                scope="openid offline_access notify")
    assert "narrow" in await oauth_error(wider, 400, "invalid_scope")

    reused = await token_request(auth_service, rp, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert "already used" in await oauth_error(reused, 400, "invalid_grant")
    # The theft is answered by revoking the whole login, the newest token included.
    latest = await token_request(auth_service, rp, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert "revoked" in await oauth_error(latest, 400, "invalid_grant")
    [reuse] = await audits(auth_service, phone.profile.account_id, "token.reuse_detected")
    assert reuse == {"action": "token.reuse_detected", "actor": "auth", "outcome": "success", "client_id": rp["client_id"],
                     "reason": "refresh-token-reused", "refresh_tokens": 2, "access_tokens": 2}


async def test_a_refresh_token_expires_after_its_lifetime(auth_service, clock, tmp_path):
    rp = await register(auth_service)
    code, verifier = await approved_code(auth_service, rp, await auth_service.citizen(tmp_path), scope="openid offline_access")
    tokens = await (await redeem(auth_service, rp, code, verifier)).json()
    clock.advance(auth_service.context.settings.refresh_token_ttl_s)
    expired = await token_request(auth_service, rp, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert await oauth_error(expired, 400, "invalid_grant") == "the refresh token is revoked or expired"


async def test_without_offline_access_there_is_no_refresh_token(auth_service, tmp_path):
    rp = await register(auth_service)
    code, verifier = await approved_code(auth_service, rp, await auth_service.citizen(tmp_path), scope="openid")
    tokens = await (await redeem(auth_service, rp, code, verifier)).json()
    assert "refresh_token" not in tokens and "id_token" in tokens


async def test_client_credentials_for_a_relying_partys_own_scopes(auth_service):
    rp = await register(auth_service, scope="openid notify")
    response = await token_request(auth_service, rp, grant_type="client_credentials")
    assert response.status == 200
    tokens = await response.json()
    assert tokens["scope"] == "notify" and set(tokens) == {"access_token", "token_type", "expires_in", "scope"}
    too_much = await token_request(auth_service, rp, grant_type="client_credentials", scope="notify sign")
    await oauth_error(too_much, 400, "invalid_scope")
    login_only = await register(auth_service, scope="openid offline_access")
    await oauth_error(await token_request(auth_service, login_only, grant_type="client_credentials"), 400, "unauthorized_client")


async def test_the_token_endpoints_own_errors(auth_service):
    rp = await register(auth_service)
    assert await oauth_error(await token_request(auth_service, rp, grant_type="password"), 400, "unsupported_grant_type") \
        == "grant_type is missing or not supported"
    await oauth_error(await token_request(auth_service, rp), 400, "unsupported_grant_type")
    await oauth_error(await token_request(auth_service, rp, grant_type="authorization_code"), 400, "invalid_request")

    wrong_secret = await auth_service.client.post("/oidc/token", data={"grant_type": "client_credentials"},
                                                  headers=basic(rp["client_id"], "not-the-secret"))
    await oauth_error(wrong_secret, 401, "invalid_client")
    assert wrong_secret.headers["WWW-Authenticate"].startswith("Basic")
    anonymous = await auth_service.client.post("/oidc/token", data={"grant_type": "client_credentials"})
    assert await oauth_error(anonymous, 401, "invalid_client") == "client authentication is required"

    not_a_form = await auth_service.client.post("/oidc/token", json={"grant_type": "client_credentials"})
    await oauth_error(not_a_form, 400, "invalid_request")
    # aiohttp's own answers stay the service kit's problems.
    not_allowed = await auth_service.client.get("/oidc/token")
    assert not_allowed.status == 405 and not_allowed.content_type == "application/problem+json"
    unknown = await auth_service.client.get("/oidc/nothing-here")
    assert unknown.status == 404 and unknown.content_type == "application/problem+json"

"""FAPI 2.0 Security Profile per client (issue 20): PAR, PKCE, private_key_jwt and DPoP required of a FAPI client only.

The client's proofs and assertions are made with jwcrypto and PyJWT, as an outside client would.
"""

from __future__ import annotations

import json
import time
import uuid

import jwt as pyjwt
from authlib.common.security import generate_token
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk, jws

from libs.tokens.dpop import access_token_hash
from services.auth.settings import AuthSettings

from .oidc_steps import REDIRECT, app_link_of, authorization_params, basic, oauth_error, query_of, register

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FAPI = {"fapi_profile": "fapi2-security"}


class FapiClient:
    """A FAPI client: its ES256 client key (private_key_jwt) and its DPoP key."""

    def __init__(self, auth_service) -> None:
        self.auth_service = auth_service
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key())) | {"kid": "fapi-1", "alg": "ES256"}
        self.dpop_key = jwk.JWK.generate(kty="EC", crv="P-256")
        self.client_id = ""

    async def register(self, **overrides) -> dict:
        rp = await register(self.auth_service, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [self.jwk]},
                            **FAPI, **overrides)
        self.client_id = rp["client_id"]
        return rp

    def assertion(self, aud=None) -> dict[str, str]:
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": aud or self.auth_service.url, "iat": now,
                  "exp": now + 60, "jti": generate_token(16)}
        return {"client_assertion_type": ASSERTION_TYPE,
                "client_assertion": pyjwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "fapi-1"})}

    def proof(self, nonce: str | None = None, htu: str | None = None) -> str:
        claims = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": htu or f"{self.auth_service.url}/oidc/token",
                  "iat": int(time.time())}
        if nonce:
            claims["nonce"] = nonce
        signed = jws.JWS(json.dumps(claims).encode())
        signed.add_signature(self.dpop_key, alg="ES256", protected=json.dumps(
            {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.dpop_key.export_public(as_dict=True)}))
        return signed.serialize(compact=True)

    async def push(self, params: dict[str, str]):
        return await self.auth_service.client.post("/oidc/par", data={**params, **self.assertion()})

    async def token(self, form: dict[str, str], proof: str | None = None):
        headers = {"DPoP": proof} if proof else {}
        return await self.auth_service.client.post("/oidc/token", data={**form, **self.assertion()}, headers=headers)


async def authorize(auth_service, params: dict):
    return await auth_service.client.get("/oidc/authorize", params=params, allow_redirects=False)


async def test_registration_refuses_a_fapi_client_with_a_client_secret(auth_service):
    for body in ({**FAPI}, {**FAPI, "token_endpoint_auth_method": "client_secret_post"}):
        refused = await auth_service.client.post("/v1/clients", json={"client_name": "Bank", "redirect_uris": [REDIRECT], **body})
        assert refused.status == 422, await refused.text()
        assert "private_key_jwt" in await refused.text()
    no_keys = await auth_service.client.post("/v1/clients", json={
        "client_name": "Bank", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt", **FAPI})
    assert no_keys.status == 422
    unknown = await auth_service.client.post("/v1/clients", json={
        "client_name": "Bank", "redirect_uris": [REDIRECT], "fapi_profile": "fapi1-advanced"})
    assert unknown.status == 422
    metadata = await (await auth_service.client.get("/.well-known/openid-configuration")).json()
    assert metadata["fapi_profiles_supported"] == ["fapi2-security"]
    assert metadata["authorization_response_iss_parameter_supported"] is True


async def test_a_fapi_clients_plain_request_pkce_less_push_and_secret_are_refused(auth_service):
    fapi = FapiClient(auth_service)
    rp = await fapi.register()
    assert rp["fapi_profile"] == "fapi2-security"
    params, _ = authorization_params(rp)
    # A plain (non-PAR) authorization request: an error page (never redirected), invalid_request "PAR required".
    for method in ("GET", "POST"):
        page = await (auth_service.client.get("/oidc/authorize", params=params, allow_redirects=False) if method == "GET"
                      else auth_service.client.post("/oidc/authorize", data=params, allow_redirects=False))
        text = await page.text()
        assert page.status == 400 and "Location" not in page.headers
        assert "invalid_request" in text and "PAR required" in text
    # Pushed without PKCE: invalid_request.
    no_pkce, _ = authorization_params(rp, code_challenge=None, code_challenge_method=None)
    assert "PKCE" in await oauth_error(await fapi.push(no_pkce), 400, "invalid_request")
    # A client secret (basic or post) instead of the client's private_key_jwt: invalid_client, at PAR and the token endpoint.
    with_secret = await auth_service.client.post("/oidc/par", data=params, headers=basic(rp["client_id"], "a-guessed-secret"))
    await oauth_error(with_secret, 401, "invalid_client")
    posted = await auth_service.client.post("/oidc/token", data={"grant_type": "client_credentials", "client_id": rp["client_id"],
                                                                "client_secret": "a-guessed-secret"})
    await oauth_error(posted, 401, "invalid_client")
    # An assertion addressed to an endpoint, or to a list holding the issuer, is refused for a FAPI client (aud = issuer).
    url = auth_service.url
    for aud in (f"{url}/oidc/par", [url], [url, f"{url}/oidc/par"]):
        wrong = await auth_service.client.post("/oidc/par", data={**authorization_params(rp)[0], **fapi.assertion(aud)})
        assert "issuer" in await oauth_error(wrong, 401, "invalid_client")


async def test_a_full_fapi_login_gets_a_dpop_bound_token_and_iss(auth_service, tmp_path):
    fapi = FapiClient(auth_service)
    rp = await fapi.register(scope="openid offline_access")
    phone = await auth_service.citizen(tmp_path)
    params, verifier = authorization_params(rp, state="s-fapi", scope="openid offline_access")
    pushed = await fapi.push(params)
    assert pushed.status == 201, await pushed.text()
    page = await authorize(auth_service, {"client_id": rp["client_id"], "request_uri": (await pushed.json())["request_uri"]})
    assert page.status == 200, await page.text()
    outcome = await phone.open_link(app_link_of(await page.text()))
    answer = query_of(outcome["redirect_to"])
    assert answer["iss"] == auth_service.url and answer["state"] == "s-fapi"  # RFC 9207
    form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": REDIRECT, "code_verifier": verifier}

    # Without a DPoP proof: invalid_dpop_proof (the code is not spent); a proof without the server nonce: use_dpop_nonce.
    assert "DPoP" in await oauth_error(await fapi.token(form), 400, "invalid_dpop_proof")
    asked = await fapi.token(form, fapi.proof())
    assert asked.status == 400 and (await asked.json())["error"] == "use_dpop_nonce"
    granted = await fapi.token(form, fapi.proof(nonce=asked.headers["DPoP-Nonce"]))
    assert granted.status == 200, await granted.text()
    tokens = await granted.json()
    assert tokens["token_type"] == "DPoP"
    claims = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": fapi.dpop_key.thumbprint()}

    # A refresh needs a proof too.
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    await oauth_error(await fapi.token(refresh), 400, "invalid_dpop_proof")


async def test_require_pushed_authorization_requests_alone_and_a_non_fapi_client_is_unaffected(auth_service):
    par_only = await register(auth_service, require_pushed_authorization_requests=True)
    page = await authorize(auth_service, authorization_params(par_only)[0])
    assert page.status == 400 and "PAR required" in await page.text()

    fapi = FapiClient(auth_service)
    plain = await register(auth_service, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [fapi.jwk]},
                           scope="openid notify")
    fapi.client_id = plain["client_id"]
    assert plain.get("fapi_profile") is None
    page = await authorize(auth_service, authorization_params(plain)[0])
    assert page.status == 200 and app_link_of(await page.text())
    # Its token request without a proof gets a Bearer token, as before; its assertion may name the endpoint.
    bearer = await auth_service.client.post("/oidc/token", data={
        "grant_type": "client_credentials", "scope": "notify", **fapi.assertion(f"{auth_service.url}/oidc/token")})
    assert bearer.status == 200, await bearer.text()
    assert (await bearer.json())["token_type"] == "Bearer"


async def test_outside_the_sandbox_a_fapi_client_needs_https_redirect_uris(auth_service, monkeypatch):
    monkeypatch.setattr(AuthSettings, "sandbox", property(lambda self: False))
    operator = {"Authorization": f"Bearer {auth_service.context.settings.admin_token}"}
    fapi = FapiClient(auth_service)
    body = {"client_name": "Bank", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [fapi.jwk]}, **FAPI}
    loopback = await auth_service.client.post("/v1/clients", json={**body, "redirect_uris": ["http://127.0.0.1:8765/cb"]},
                                              headers=operator)
    assert loopback.status == 422 and "https" in (await loopback.json())["detail"]
    https = await auth_service.client.post("/v1/clients", json={**body, "redirect_uris": [REDIRECT]}, headers=operator)
    assert https.status == 201, await https.text()
    # Not for other clients: loopback http stays a development URI for them.
    plain = await auth_service.client.post("/v1/clients", headers=operator, json={
        "client_name": "Dev", "redirect_uris": ["http://127.0.0.1:8765/cb"]})
    assert plain.status == 201, await plain.text()


async def test_a_code_pushed_with_a_dpop_proof_is_redeemed_only_with_that_key(auth_service, tmp_path):
    """RFC 9449 §10: a DPoP proof sent with the pushed request binds the code to its key (dpop_jkt), so a thief of the
    code who holds the client's credentials but not the DPoP key cannot redeem it with a key of their own."""
    fapi = FapiClient(auth_service)
    rp = await fapi.register()
    phone = await auth_service.citizen(tmp_path)
    params, verifier = authorization_params(rp, state="s-bound")
    pushed = await auth_service.client.post("/oidc/par", data={**params, **fapi.assertion()},
                                            headers={"DPoP": fapi.proof(htu=f"{auth_service.url}/oidc/par")})
    assert pushed.status == 201, await pushed.text()
    page = await authorize(auth_service, {"client_id": rp["client_id"], "request_uri": (await pushed.json())["request_uri"]})
    code = query_of((await phone.open_link(app_link_of(await page.text())))["redirect_to"])["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}

    thief = FapiClient(auth_service)
    thief.client_id, thief.key = fapi.client_id, fapi.key  # the client's own credentials, another DPoP key
    asked = await thief.token(form, thief.proof())
    nonce = asked.headers["DPoP-Nonce"]
    assert "another DPoP key" in await oauth_error(await thief.token(form, thief.proof(nonce=nonce)), 400, "invalid_grant")
    granted = await fapi.token(form, fapi.proof(nonce=nonce))  # not spent by the refusal: the right key redeems it
    assert granted.status == 200, await granted.text()
    claims = pyjwt.decode((await granted.json())["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": fapi.dpop_key.thumbprint()}

    # A proof for another URL at PAR, or a dpop_jkt naming another key than the proof's: refused, nothing pushed.
    wrong_url = await auth_service.client.post("/oidc/par", data={**params, **fapi.assertion()}, headers={"DPoP": fapi.proof()})
    await oauth_error(wrong_url, 400, "invalid_dpop_proof")
    mismatch = await auth_service.client.post("/oidc/par", data={**params, **fapi.assertion(), "dpop_jkt": thief.dpop_key.thumbprint()},
                                              headers={"DPoP": fapi.proof(htu=f"{auth_service.url}/oidc/par")})
    await oauth_error(mismatch, 400, "invalid_dpop_proof")
    malformed = await fapi.push({**params, "dpop_jkt": "not-a-thumbprint"})
    await oauth_error(malformed, 400, "invalid_request")


async def fapi_tokens(auth_service, fapi: FapiClient, tmp_path) -> tuple[dict, str]:
    """A FAPI login's DPoP-bound tokens with offline_access, and the server's DPoP nonce."""
    rp = await fapi.register(scope="openid offline_access")
    phone = await auth_service.citizen(tmp_path)
    params, verifier = authorization_params(rp, state="s-retry", scope="openid offline_access")
    pushed = await fapi.push(params)
    page = await authorize(auth_service, {"client_id": rp["client_id"], "request_uri": (await pushed.json())["request_uri"]})
    code = query_of((await phone.open_link(app_link_of(await page.text())))["redirect_to"])["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    nonce = (await fapi.token(form, fapi.proof())).headers["DPoP-Nonce"]
    granted = await fapi.token(form, fapi.proof(nonce=nonce))
    assert granted.status == 200, await granted.text()
    return await granted.json(), nonce


async def test_a_fapi_client_that_lost_a_refresh_answer_retries_with_the_previous_token(auth_service, clock, tmp_path):
    """FAPI 2.0 §5.3.2.1: refresh tokens may rotate only if a client that never received the answer can retry with
    the previous one. A DPoP-bound token retried by its key within a minute, while its successor is unused, gets a
    new pair; the lost successor and its access token are revoked. A second use of the old token after the successor
    was used is reuse, and revokes the family, as for any token."""
    fapi = FapiClient(auth_service)
    tokens, nonce = await fapi_tokens(auth_service, fapi, tmp_path)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    lost = await fapi.token(refresh, fapi.proof(nonce=nonce))  # the answer the client never received
    assert lost.status == 200, await lost.text()
    lost = await lost.json()

    clock.advance(30)
    retried = await fapi.token(refresh, fapi.proof(nonce=nonce))
    assert retried.status == 200, await retried.text()
    retried = await retried.json()
    assert retried["refresh_token"] not in (lost["refresh_token"], tokens["refresh_token"])
    # The lost pair is dead: its refresh token refused without revoking anything, its access token revoked.
    dead = await fapi.token({**refresh, "refresh_token": lost["refresh_token"]}, fapi.proof(nonce=nonce))
    assert "revoked" in await oauth_error(dead, 400, "invalid_grant")
    userinfo_url = f"{auth_service.url}/oidc/userinfo"

    def resource_proof(access_token: str) -> str:
        claims = {"jti": uuid.uuid4().hex, "htm": "GET", "htu": userinfo_url, "iat": int(time.time()),
                  "ath": access_token_hash(access_token)}
        signed = jws.JWS(json.dumps(claims).encode())
        signed.add_signature(fapi.dpop_key, alg="ES256", protected=json.dumps(
            {"typ": "dpop+jwt", "alg": "ES256", "jwk": fapi.dpop_key.export_public(as_dict=True)}))
        return signed.serialize(compact=True)

    async def userinfo(access_token: str) -> int:
        answer = await auth_service.client.get("/oidc/userinfo", headers={
            "Authorization": f"DPoP {access_token}", "DPoP": resource_proof(access_token)})
        return answer.status

    assert await userinfo(lost["access_token"]) == 401
    assert await userinfo(retried["access_token"]) == 200
    # The new pair goes on as usual.
    onward = await fapi.token({**refresh, "refresh_token": retried["refresh_token"]}, fapi.proof(nonce=nonce))
    assert onward.status == 200, await onward.text()
    onward = await onward.json()

    # Now the old token again: its successor was used, so this is reuse - the whole family goes.
    reused = await fapi.token(refresh, fapi.proof(nonce=nonce))
    assert "already used" in await oauth_error(reused, 400, "invalid_grant")
    latest = await fapi.token({**refresh, "refresh_token": onward["refresh_token"]}, fapi.proof(nonce=nonce))
    assert "revoked" in await oauth_error(latest, 400, "invalid_grant")


async def test_the_retry_grace_needs_the_tokens_key_and_ends_after_a_minute(auth_service, clock, tmp_path):
    fapi = FapiClient(auth_service)
    tokens, nonce = await fapi_tokens(auth_service, fapi, tmp_path)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert (await fapi.token(refresh, fapi.proof(nonce=nonce))).status == 200
    # Another key (the client's own credentials, a thief's DPoP key): refused, and it is not a retry - the family goes.
    thief = FapiClient(auth_service)
    thief.client_id, thief.key = fapi.client_id, fapi.key
    await oauth_error(await thief.token(refresh, thief.proof(nonce=nonce)), 400, "invalid_grant")

    fapi = FapiClient(auth_service)
    tokens, nonce = await fapi_tokens(auth_service, fapi, tmp_path / "second")
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    successor = await (await fapi.token(refresh, fapi.proof(nonce=nonce))).json()
    clock.advance(61)
    late = await fapi.token(refresh, fapi.proof(nonce=nonce))
    assert "already used" in await oauth_error(late, 400, "invalid_grant")
    after = await fapi.token({**refresh, "refresh_token": successor["refresh_token"]}, fapi.proof(nonce=nonce))
    assert "revoked" in await oauth_error(after, 400, "invalid_grant")

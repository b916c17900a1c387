"""Signed request objects (JAR, RFC 9101) in process: by value and through PAR, each bad one refused before a login starts.

The relying party signs with jwcrypto, as an outside client would; the times are the test clock's (auth judges
`exp` and `nbf` at its own clock).
"""

from __future__ import annotations

import json

from jwcrypto import jwk, jws, jwt

from services.auth.collections import AUTHORIZATIONS, PUSHED_REQUESTS

from .oidc_steps import REDIRECT, app_link_of, authorization_params, client_auth, oauth_error, query_of, redeem, register

RO_TYP = "oauth-authz-req+jwt"


class SigningClient:
    """A relying party with an ES256 key in its registered jwks: it signs its authorization requests."""

    def __init__(self, auth_service, clock) -> None:
        self.auth_service, self.clock = auth_service, clock
        self.key = jwk.JWK.generate(kty="EC", crv="P-256", kid="jar-1")
        self.rp: dict = {}

    async def register(self, **overrides) -> dict:
        public = json.loads(self.key.export_public()) | {"alg": "ES256", "use": "sig"}
        self.rp = await register(self.auth_service, jwks={"keys": [public]}, **overrides)
        return self.rp

    def claims(self, params: dict[str, str], **overrides) -> dict:
        now = int(self.clock.now().timestamp())
        claims = {**params, "iss": self.rp["client_id"], "aud": self.auth_service.url, "iat": now, "nbf": now,
                  "exp": now + 300, "jti": f"ro-{now}", **overrides}
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict, *, key: jwk.JWK | None = None, alg: str = "ES256") -> str:
        token = jwt.JWT(header={"alg": alg, "typ": RO_TYP, "kid": "jar-1"}, claims=claims)
        token.make_signed_token(key or self.key)
        return token.serialize()

    def request_object(self, **overrides) -> tuple[str, str, dict]:
        """(a signed request object, its PKCE verifier, its parameters)."""
        params, verifier = authorization_params(self.rp)
        return self.sign(self.claims(params, **overrides)), verifier, params


async def authorize(auth_service, params: dict):
    return await auth_service.client.get("/oidc/authorize", params=params, allow_redirects=False)


async def logins(auth_service) -> int:
    return await auth_service.context.db[AUTHORIZATIONS].count_documents({})


async def test_a_signed_request_object_by_value_logs_the_citizen_in(auth_service, clock, tmp_path):
    client = SigningClient(auth_service, clock)
    rp = await client.register()
    phone = await auth_service.citizen(tmp_path)
    request_object, verifier, params = client.request_object()
    # RFC 9101 §6.3: only the request object counts; outer parameters beside client_id are ignored.
    outer = {"client_id": rp["client_id"], "request": request_object, "state": "outer-state", "scope": "openid sign"}
    page = await authorize(auth_service, outer)
    assert page.status == 200, await page.text()
    outcome = await phone.open_link(app_link_of(await page.text()))
    answer = query_of(outcome["redirect_to"])
    assert answer["state"] == params["state"] and outcome["redirect_to"].startswith(REDIRECT)
    tokens = await redeem(auth_service, rp, answer["code"], verifier)
    assert tokens.status == 200 and (await tokens.json())["scope"] == "openid"


async def test_a_signed_request_object_through_par(auth_service, clock, tmp_path):
    client = SigningClient(auth_service, clock)
    rp = await client.register()
    phone = await auth_service.citizen(tmp_path)
    request_object, verifier, params = client.request_object()
    pushed = await auth_service.client.post("/oidc/par", data={"request": request_object, "state": "ignored"},
                                            headers=client_auth(rp))
    assert pushed.status == 201, await pushed.text()
    stored = await auth_service.context.db[PUSHED_REQUESTS].find_one({})
    assert stored["params"]["state"] == params["state"] and "request" not in stored["params"]
    page = await authorize(auth_service, {"client_id": rp["client_id"], "request_uri": (await pushed.json())["request_uri"]})
    assert page.status == 200
    outcome = await phone.open_link(app_link_of(await page.text()))
    answer = query_of(outcome["redirect_to"])
    assert answer["state"] == params["state"]
    assert (await redeem(auth_service, rp, answer["code"], verifier)).status == 200


async def test_bad_request_objects_are_refused_before_anything_starts(auth_service, clock):
    client = SigningClient(auth_service, clock)
    rp = await client.register()
    params, _ = authorization_params(rp)
    good = client.claims(params)
    header, payload, signature = client.sign(good).split(".")
    tampered = ".".join((header, payload, ("A" if signature[0] != "A" else "B") + signature[1:]))
    other_key = jwk.JWK.generate(kty="EC", crv="P-256", kid="jar-1")
    now = int(clock.now().timestamp())
    # alg none: jwcrypto refuses to make one, so it is put together by hand (as an attacker would).
    unsigned = jws.base64url_encode(json.dumps({"alg": "none", "typ": RO_TYP})) + "." + \
        jws.base64url_encode(json.dumps(good)) + "."
    # HS256 keyed with the client secret: a secret both sides know is no proof the client signed.
    secret_key = jwk.JWK(kty="oct", k=jws.base64url_encode(rp["client_secret"].encode()))
    bad = {
        "tampered signature": tampered,
        "another key": client.sign(good, key=other_key),
        "expired": client.sign(client.claims(params, iat=now - 600, nbf=now - 600, exp=now - 60)),
        "no exp": client.sign(client.claims(params, exp=None)),
        "lives too long": client.sign(client.claims(params, exp=now + 2 * 3600)),
        "nbf in the future": client.sign(client.claims(params, nbf=now + 600)),
        "wrong aud": client.sign(client.claims(params, aud="https://elsewhere.example")),
        "wrong iss": client.sign(client.claims(params, iss="someone-else")),
        "alg none": unsigned,
        "HS256 with the client secret": client.sign(good, key=secret_key, alg="HS256"),
        "client_id mismatch": client.sign(client.claims(params, client_id="another-client")),
        "no client_id inside": client.sign(client.claims(params, client_id=None)),
    }
    for reason, request_object in bad.items():
        page = await authorize(auth_service, {"client_id": rp["client_id"], "request": request_object})
        # Never redirected: the redirect_uri inside is not trusted. An error page names the error.
        assert page.status == 400 and page.content_type == "text/html", reason
        assert "Location" not in page.headers and "invalid_request_object" in await page.text(), reason
        pushed = await auth_service.client.post("/oidc/par", data={"request": request_object}, headers=client_auth(rp))
        await oauth_error(pushed, 400, "invalid_request_object")
    assert await logins(auth_service) == 0
    assert await auth_service.context.db[PUSHED_REQUESTS].count_documents({}) == 0


async def test_request_uri_is_only_pars_and_request_needs_a_client_with_keys(auth_service, clock):
    client = SigningClient(auth_service, clock)
    rp = await client.register()
    request_object, _, _ = client.request_object()
    page = await authorize(auth_service, {"client_id": rp["client_id"], "request_uri": "https://rp.example/request.jwt"})
    assert page.status == 400 and "request_uri_not_supported" in await page.text()
    both = await authorize(auth_service, {"client_id": rp["client_id"], "request": request_object,
                                          "request_uri": "urn:ietf:params:oauth:request_uri:x"})
    assert both.status == 400 and "invalid_request" in await both.text()
    # A client without registered keys cannot sign one.
    keyless = await register(auth_service)
    params, _ = authorization_params(keyless)
    signed = client.sign(client.claims(params, iss=keyless["client_id"]))
    page = await authorize(auth_service, {"client_id": keyless["client_id"], "request": signed})
    assert page.status == 400 and "invalid_request_object" in await page.text()
    assert await logins(auth_service) == 0


async def test_a_client_that_requires_signed_requests_is_refused_a_plain_one(auth_service, clock, tmp_path):
    client = SigningClient(auth_service, clock)
    rp = await client.register(require_signed_request_object=True)
    assert rp["require_signed_request_object"] is True
    params, _ = authorization_params(rp)
    plain = await authorize(auth_service, params)
    assert plain.status == 400 and "Location" not in plain.headers and "signed request object" in await plain.text()
    pushed = await auth_service.client.post("/oidc/par", data=params, headers=client_auth(rp))
    assert "signed request object" in await oauth_error(pushed, 400, "invalid_request")
    assert await logins(auth_service) == 0
    # Signed, it goes through.
    request_object, _, _ = client.request_object()
    page = await authorize(auth_service, {"client_id": rp["client_id"], "request": request_object})
    assert page.status == 200 and await logins(auth_service) == 1
    # And it needs keys to sign with.
    refused = await auth_service.client.post("/v1/clients", json={
        "client_name": "No Keys", "redirect_uris": [REDIRECT], "require_signed_request_object": True})
    assert refused.status == 422 and refused.content_type == "application/problem+json"


async def test_discovery_advertises_request_objects(auth_service):
    metadata = await (await auth_service.client.get("/.well-known/openid-configuration")).json()
    assert metadata["request_parameter_supported"] is True
    assert metadata["request_object_signing_alg_values_supported"] == ["ES256", "PS256"]
    assert metadata["require_signed_request_object"] is False


async def test_a_ps256_request_object_signed_with_a_registered_rsa_key(auth_service, clock, tmp_path):
    client = SigningClient(auth_service, clock)
    rsa_key = jwk.JWK.generate(kty="RSA", size=2048, kid="jar-rsa")
    public_rsa = json.loads(rsa_key.export_public()) | {"alg": "PS256", "use": "sig"}
    public_ec = json.loads(client.key.export_public()) | {"alg": "ES256", "use": "sig"}
    rp = await register(auth_service, jwks={"keys": [public_ec, public_rsa]})
    client.rp = rp
    phone = await auth_service.citizen(tmp_path)
    params, verifier = authorization_params(rp)
    claims = client.claims(params)

    def ps256(claims: dict, key: jwk.JWK = rsa_key, kid: str = "jar-rsa") -> str:
        token = jwt.JWT(header={"alg": "PS256", "typ": RO_TYP, "kid": kid}, claims=claims)
        token.make_signed_token(key)
        return token.serialize()

    page = await authorize(auth_service, {"client_id": rp["client_id"], "request": ps256(claims)})
    assert page.status == 200, await page.text()
    outcome = await phone.open_link(app_link_of(await page.text()))
    assert (await redeem(auth_service, rp, query_of(outcome["redirect_to"])["code"], verifier)).status == 200
    # PS256 named over the EC key's kid, or RS256 (PKCS#1 v1.5) with the RSA key: refused.
    header = jws.base64url_encode(json.dumps({"alg": "PS256", "kid": "jar-1"}))
    rs256 = jwt.JWT(header={"alg": "RS256", "kid": "jar-rsa"}, claims=claims)
    rs256.make_signed_token(rsa_key)
    for bad in (header + "." + ps256(claims).split(".", 1)[1], rs256.serialize()):
        page = await authorize(auth_service, {"client_id": rp["client_id"], "request": bad})
        assert page.status == 400 and "invalid_request_object" in await page.text()
    # Registered RSA keys are public and 2048 bits at least.
    short = json.loads(jwk.JWK.generate(kty="RSA", size=1024).export_public())
    private = json.loads(rsa_key.export_private())
    for key in (short, private):
        refused = await auth_service.client.post("/v1/clients", json={
            "client_name": "Bad Key", "redirect_uris": [REDIRECT], "jwks": {"keys": [key]}})
        assert refused.status == 422, await refused.text()
    # An RSA key alone cannot make private_key_jwt's ES256 assertions.
    refused = await auth_service.client.post("/v1/clients", json={
        "client_name": "RSA Only", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [public_rsa]}})
    assert refused.status == 422 and "P-256" in await refused.text()

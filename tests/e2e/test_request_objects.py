"""Signed request objects (JAR, RFC 9101) through the gateway: a private_key_jwt client signs its authorization requests
with Authlib's JsonWebToken, by value and through PAR, and redeems the code with Authlib's OAuth2Session."""

from __future__ import annotations

import time

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.jwk import ECKey

from ..support.citizens import enrolled_app
from ..support.oidc import REDIRECT, app_link_of, register

pytestmark = pytest.mark.e2e

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class SigningClient:
    """A relying party with one ES256 key: its client assertions and its request objects."""

    def __init__(self, platform, metadata) -> None:
        self.metadata = metadata
        self.key = JsonWebKey.generate_key("EC", "P-256", is_private=True, options={"kid": "jar-e2e"})
        public = self.key.as_dict(is_private=False) | {"kid": "jar-e2e", "alg": "ES256", "use": "sig"}
        self.rp = register(platform, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public]},
                           require_signed_request_object=True)
        self.client_id = self.rp["client_id"]

    def request_object(self, **overrides) -> tuple[str, str, str]:
        """(a signed request object, its PKCE verifier, its state)."""
        verifier, state, now = generate_token(48), generate_token(12), int(time.time())
        claims = {"iss": self.client_id, "aud": self.metadata["issuer"], "iat": now, "nbf": now, "exp": now + 300,
                  "client_id": self.client_id, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                  "state": state, "nonce": generate_token(12), "code_challenge": create_s256_code_challenge(verifier),
                  "code_challenge_method": "S256", **overrides}
        header = {"alg": "ES256", "typ": "oauth-authz-req+jwt", "kid": "jar-e2e"}
        return JsonWebToken(["ES256"]).encode(header, claims, self.key).decode(), verifier, state

    def assertion(self, audience: str) -> dict[str, str]:
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": audience, "iat": now, "exp": now + 60, "jti": generate_token(16)}
        token = JsonWebToken(["ES256"]).encode({"alg": "ES256", "kid": "jar-e2e"}, claims, self.key).decode()
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}

    def session(self) -> OAuth2Session:
        pem = self.key.as_pem(is_private=True)
        return OAuth2Session(self.client_id, ECKey.import_key(pem), redirect_uri=REDIRECT,
                             token_endpoint_auth_method=PrivateKeyJWT(self.metadata["token_endpoint"], headers={"kid": "jar-e2e"}, alg="ES256"))

    def authorize(self, **params) -> requests.Response:
        return requests.get(self.metadata["authorization_endpoint"], params={"client_id": self.client_id, **params},
                            allow_redirects=False, timeout=10)


async def test_request_objects_by_value_and_through_par_at_the_gateway(platform, kiosk, metadata, tmp_path):
    assert metadata["request_parameter_supported"] is True and metadata["request_object_signing_alg_values_supported"] == ["ES256", "PS256"]
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    client = SigningClient(platform, metadata)
    session = client.session()

    # By value: the outer parameters beside client_id are ignored (RFC 9101 §6.3).
    request_object, verifier, state = client.request_object()
    page = client.authorize(request=request_object, state="outer", scope="openid offline_access")
    assert page.status_code == 200, page.text
    outcome = await citizen.open_link(app_link_of(page.text))
    assert f"state={state}" in outcome["redirect_to"]
    token = session.fetch_token(metadata["token_endpoint"], authorization_response=outcome["redirect_to"], code_verifier=verifier)
    assert token["scope"] == "openid" and "refresh_token" not in token

    # Through PAR, the push authenticated with a client assertion.
    request_object, verifier, state = client.request_object()
    pushed = requests.post(metadata["pushed_authorization_request_endpoint"], timeout=10,
                           data={"client_id": client.client_id, "request": request_object,
                                 **client.assertion(metadata["issuer"])})
    assert pushed.status_code == 201, pushed.text
    page = client.authorize(request_uri=pushed.json()["request_uri"])
    assert page.status_code == 200, page.text
    outcome = await citizen.open_link(app_link_of(page.text))
    assert f"state={state}" in outcome["redirect_to"]
    assert "access_token" in session.fetch_token(metadata["token_endpoint"], authorization_response=outcome["redirect_to"],
                                                 code_verifier=verifier)

    # A plain request from this client, a tampered or expired request object: refused, never redirected.
    plain = client.authorize(response_type="code", redirect_uri=REDIRECT, scope="openid",
                             code_challenge=create_s256_code_challenge(generate_token(48)), code_challenge_method="S256")
    assert plain.status_code == 400 and "Location" not in plain.headers and "invalid_request" in plain.text
    header, payload, signature = client.request_object()[0].split(".")
    tampered = ".".join((header, payload, ("A" if signature[0] != "A" else "B") + signature[1:]))
    expired, _, _ = client.request_object(iat=int(time.time()) - 900, nbf=int(time.time()) - 900, exp=int(time.time()) - 600)
    for bad in (tampered, expired):
        refused = client.authorize(request=bad)
        assert refused.status_code == 400 and "Location" not in refused.headers and "invalid_request_object" in refused.text

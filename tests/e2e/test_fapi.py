"""A FAPI 2.0 client through the gateway (issue 20): PAR + PKCE + private_key_jwt + DPoP, and what it is refused.

The client speaks HTTP with requests, signs its client assertions with PyJWT
and its DPoP proofs with jwcrypto (test_dpop.DPoPKey), as an outside client
would; the citizen approves on the phone.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives.asymmetric import ec

from ..support.citizens import enrolled_app
from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, register
from .test_dpop import DPoPKey, call

pytestmark = pytest.mark.e2e

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_a_fapi_client_logs_in_with_par_private_key_jwt_and_dpop(platform, kiosk, metadata, tmp_path):
    assert metadata["fapi_profiles_supported"] == ["fapi2-security"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(key.public_key())) | {"kid": "bank-1", "alg": "ES256"}
    rp = register(platform, client_name="FAPI Bank", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk]},
                  fapi_profile="fapi2-security")
    client_id = rp["client_id"]

    def assertion() -> dict[str, str]:
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": metadata["issuer"], "iat": now, "exp": now + 60,
                  "jti": generate_token(16)}
        return {"client_assertion_type": ASSERTION_TYPE,
                "client_assertion": pyjwt.encode(claims, key, algorithm="ES256", headers={"kid": "bank-1"})}

    # A plain authorization request is refused: an error page, never a redirect.
    plain, _ = authorize_url(metadata, client_id)
    page = requests.get(plain, timeout=10, allow_redirects=False)
    assert page.status_code == 400 and "PAR required" in page.text and "Location" not in page.headers

    verifier = generate_token(48)
    request = {"client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
               "state": generate_token(12), "nonce": generate_token(12)}
    par = metadata["pushed_authorization_request_endpoint"]
    # Without PKCE, or with a client secret: refused at PAR.
    no_pkce = requests.post(par, data={**request, **assertion()}, timeout=10)
    assert no_pkce.status_code == 400 and no_pkce.json()["error"] == "invalid_request", no_pkce.text
    request |= {"code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    with_secret = requests.post(par, data={**request, "client_secret": "guessed"}, timeout=10)
    assert with_secret.status_code == 401 and with_secret.json()["error"] == "invalid_client", with_secret.text

    pushed = requests.post(par, data={**request, **assertion()}, timeout=10)
    assert pushed.status_code == 201, pushed.text
    citizen = await enrolled_app(platform, kiosk, tmp_path, "fapi-phone")
    login_page = requests.get(metadata["authorization_endpoint"], timeout=10,
                              params={"client_id": client_id, "request_uri": pushed.json()["request_uri"]})
    assert login_page.status_code == 200, login_page.text
    outcome = await citizen.open_link(app_link_of(login_page.text))
    answer = {k: v[0] for k, v in parse_qs(urlsplit(outcome["redirect_to"]).query).items()}
    assert answer["iss"] == metadata["issuer"] and answer["state"] == request["state"]  # RFC 9207

    form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": REDIRECT, "code_verifier": verifier}
    token_endpoint = metadata["token_endpoint"]
    bearer = requests.post(token_endpoint, data={**form, **assertion()}, timeout=10)
    assert bearer.status_code == 400 and bearer.json()["error"] == "invalid_dpop_proof", bearer.text
    dpop = DPoPKey()
    asked = requests.post(token_endpoint, data={**form, **assertion()}, headers={"DPoP": dpop.proof("POST", token_endpoint)},
                          timeout=10)
    assert asked.status_code == 400 and asked.json()["error"] == "use_dpop_nonce", asked.text
    proof = dpop.proof("POST", token_endpoint, nonce=asked.headers["DPoP-Nonce"])
    granted = requests.post(token_endpoint, data={**form, **assertion()}, headers={"DPoP": proof}, timeout=10)
    assert granted.status_code == 200, granted.text
    tokens = granted.json()
    assert tokens["token_type"] == "DPoP" and claims_of(tokens["access_token"])["cnf"] == {"jkt": dpop.jkt}
    userinfo = call("GET", metadata["userinfo_endpoint"], tokens["access_token"], dpop)
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == claims_of(tokens["id_token"])["sub"], userinfo.text

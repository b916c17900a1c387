"""A FAPI 2.0 client through the gateway (issue 20): PAR + PKCE + private_key_jwt + DPoP, and what it is refused.

The client speaks HTTP with requests, signs its client assertions with PyJWT
and its DPoP proofs with jwcrypto (test_dpop.DPoPKey), as an outside client
would; the citizen approves on the phone. Node's openid-client (tests/interop/node/fapi.mjs) does the
same with its own PAR, private_key_jwt and DPoP, then calls signing through the gateway with the bound token.
"""

from __future__ import annotations

import json
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK

from ..support.citizens import enrolled_app
from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, register
from .test_dpop import DPoPKey, call, refused
from .test_oidc_node import NODE_DIR, node  # noqa: F401  (the fixture: node with openid-client installed)

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


# --- Node's openid-client v6 as the FAPI 2.0 client (tests/interop/node/fapi.mjs) ------------------------------

def fapi_mjs(node: str, *args: str) -> dict:
    result = subprocess.run([node, "fapi.mjs", *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"node fapi.mjs {args[0]} exited {result.returncode}:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


async def test_openid_client_fapi_login_then_a_dpop_bound_api_call_refused_without_its_proof(
        platform, kiosk, metadata, node, tmp_path):
    """openid-client drives PAR + PKCE + private_key_jwt + DPoP and signs a request through the gateway; the same
    token without its proof, with a proof for another URL or method, or a replayed proof is refused by the gateway and
    by signing directly."""
    client_key = JWK.generate(kty="EC", crv="P-256", kid="node-bank-1")
    public = client_key.export_public(as_dict=True) | {"alg": "ES256", "use": "sig"}
    rp = register(platform, client_name="Node FAPI Bank", scope="openid sign", token_endpoint_auth_method="private_key_jwt",
                  jwks={"keys": [public]}, fapi_profile="fapi2-security")
    dpop = DPoPKey()
    keys = (json.dumps(client_key.export_private(as_dict=True)), json.dumps(dpop.key.export_private(as_dict=True)))
    issuer, client_id = platform.gateway, rp["client_id"]
    citizen = await enrolled_app(platform, kiosk, tmp_path, "node-fapi-phone")

    started = fapi_mjs(node, "start", issuer, client_id, *keys, REDIRECT)
    pushed = parse_qs(urlsplit(started["url"]).query)
    assert set(pushed) == {"client_id", "request_uri"}, started["url"]  # the request itself went by PAR
    login_page = requests.get(started["url"], timeout=10)
    assert login_page.status_code == 200, login_page.text
    outcome = await citizen.open_link(app_link_of(login_page.text))
    finished = fapi_mjs(node, "finish", issuer, client_id, *keys, outcome["redirect_to"],
                        started["code_verifier"], started["state"], started["nonce"])
    token = finished["access_token"]
    assert finished["token_type"].lower() == "dpop" and claims_of(token)["cnf"] == {"jkt": dpop.jkt}
    assert finished["userinfo_sub"] == finished["sub"] == claims_of(token)["sub"]
    assert finished["created_status"] == 201 and finished["status_status"] == 200, finished
    assert finished["status"]["status"] == "pending", finished

    # The same token, from here on with proofs made by the Python side (the same DPoP key, jwcrypto).
    gateway_url = f"{issuer}/v1/signing/requests/{finished['request_id']}"  # what every proof's htu names
    for base in (issuer, platform.stack.config.service_url("signing")):  # the edge, then signing directly
        url = f"{base}/v1/signing/requests/{finished['request_id']}"
        good = dpop.proof("GET", gateway_url, access_token=token)
        assert call("GET", url, token, None, proof=good).status_code == 200
        refused(call("GET", url, token, None, scheme="Bearer"), "invalid_token")  # no proof, as a Bearer token
        refused(call("GET", url, token, None), "invalid_dpop_proof")  # DPoP scheme, no proof
        refused(call("GET", url, token, None, proof=dpop.proof("GET", gateway_url + "/result", access_token=token)),
                "invalid_dpop_proof")  # a proof for another URL
        refused(call("GET", url, token, None, proof=dpop.proof("POST", gateway_url, access_token=token)),
                "invalid_dpop_proof")  # for another method
        refused(call("GET", url, token, None, proof=good), "invalid_dpop_proof")  # replayed

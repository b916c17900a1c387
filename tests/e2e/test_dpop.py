"""DPoP (RFC 9449, issue 20): sender-constrained access and refresh tokens, driven by an outside client.

The client makes its proofs with jwcrypto and speaks HTTP with requests: it
gets DPoP-bound tokens by client credentials and by the code flow (approved
on the citizen's phone), calls notify through the gateway and directly, and
userinfo at auth. The same token as a Bearer token, a proof for another URL
or method, a replayed proof and a refresh by another key are each refused.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest
import requests
from jwcrypto import jwk, jws

from libs.tokens.dpop import access_token_hash

from ..support.citizens import enrolled_app
from ..support.oidc import REDIRECT, app_link_of, authorize_url, claims_of, register
from .test_oidc_node import NODE_DIR, node  # noqa: F401  (the fixture: node with openid-client installed)

pytestmark = pytest.mark.e2e


class DPoPKey:
    """An outside client's DPoP key and its proofs (jwcrypto)."""

    def __init__(self, **kind) -> None:
        self.key = jwk.JWK.generate(**(kind or {"kty": "EC", "crv": "P-256"}))
        self.alg = {"EC": "ES256", "OKP": "EdDSA", "RSA": "RS256"}[self.key.get("kty")]

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None) -> str:
        claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url.split("?")[0], "iat": int(time.time())}
        if access_token:
            claims["ath"] = access_token_hash(access_token)
        if nonce:
            claims["nonce"] = nonce
        signed = jws.JWS(json.dumps(claims).encode())
        signed.add_signature(self.key, alg=self.alg, protected=json.dumps(
            {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.key.export_public(as_dict=True)}))
        return signed.serialize(compact=True)


def token_request(metadata, rp, key: DPoPKey | None, *, nonce: str | None = None, proof: str | None = None, **form):
    headers = {}
    if key is not None or proof is not None:
        headers["DPoP"] = proof or key.proof("POST", metadata["token_endpoint"], nonce=nonce)
    return requests.post(metadata["token_endpoint"], data=form, headers=headers, auth=(rp["client_id"], rp["client_secret"]),
                         timeout=10)


def call(method: str, url: str, token: str, key: DPoPKey | None, *, proof: str | None = None, scheme: str = "DPoP"):
    headers = {"Authorization": f"{scheme} {token}"}
    if key is not None or proof is not None:
        headers["DPoP"] = proof or key.proof(method, url, access_token=token)
    return requests.request(method, url, headers=headers, timeout=10)


def refused(response: requests.Response, error: str) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ") and f'error="{error}"' in challenge, challenge


def assert_refusals(url_of, token: str, key: DPoPKey, good_proof: str) -> None:
    """The same token without its proof, with a proof for another URL, another method or another token, replayed."""
    templates = url_of("/v1/templates")
    refused(call("GET", templates, token, None, scheme="Bearer"), "invalid_token")
    refused(call("GET", templates, token, None), "invalid_dpop_proof")  # DPoP scheme, no proof
    refused(call("GET", templates, token, None, proof=key.proof("GET", url_of("/v1/notifications"), access_token=token)),
            "invalid_dpop_proof")
    refused(call("GET", templates, token, None, proof=key.proof("POST", templates, access_token=token)), "invalid_dpop_proof")
    refused(call("GET", templates, token, None, proof=key.proof("GET", templates, access_token="another token")), "invalid_dpop_proof")
    refused(call("GET", templates, token, None, proof=DPoPKey().proof("GET", templates, access_token=token)), "invalid_dpop_proof")
    refused(call("GET", templates, token, None, proof=good_proof), "invalid_dpop_proof")  # replayed


async def test_client_credentials_token_is_dpop_bound_at_the_gateway_and_at_the_service(platform, metadata):
    assert set(metadata["dpop_signing_alg_values_supported"]) == {"ES256", "EdDSA", "RS256"}
    rp = register(platform, client_name="DPoP Agency", scope="openid notify")
    key = DPoPKey()
    granted = token_request(metadata, rp, key, grant_type="client_credentials", scope="notify")
    assert granted.status_code == 200, granted.text
    assert granted.json()["token_type"] == "DPoP"
    token = granted.json()["access_token"]
    assert claims_of(token)["cnf"] == {"jkt": key.jkt}
    described = requests.post(metadata["introspection_endpoint"], data={"token": token},
                              auth=(rp["client_id"], rp["client_secret"]), timeout=10).json()
    assert described["active"] and described["token_type"] == "DPoP" and described["cnf"] == {"jkt": key.jkt}

    # Through the gateway: the proof names the public URL.
    gateway = lambda path: platform.gateway + path  # noqa: E731
    proof = key.proof("GET", gateway("/v1/templates"), access_token=token)
    ok = call("GET", gateway("/v1/templates"), token, None, proof=proof)
    assert ok.status_code == 200, ok.text
    assert_refusals(gateway, token, key, proof)

    # At notify directly (bypassing the gateway), the proof still names the issuer's public URL (docs/api.md).
    notify = platform.stack.config.service_url("notify")
    direct_proof = key.proof("GET", gateway("/v1/templates"), access_token=token)
    ok = call("GET", notify + "/v1/templates", token, None, proof=direct_proof)
    assert ok.status_code == 200, ok.text
    refused(call("GET", notify + "/v1/templates", token, None, scheme="Bearer"), "invalid_token")
    refused(call("GET", notify + "/v1/templates", token, None, proof=direct_proof), "invalid_dpop_proof")  # replayed
    # A proof the gateway accepted, replayed straight at the service: the service remembers it too.
    through_gateway = key.proof("GET", gateway("/v1/templates"), access_token=token)
    assert call("GET", gateway("/v1/templates"), token, None, proof=through_gateway).status_code == 200
    refused(call("GET", notify + "/v1/templates", token, None, proof=through_gateway), "invalid_dpop_proof")
    other = key.proof("GET", gateway("/v1/notifications"), access_token=token)
    refused(call("GET", notify + "/v1/templates", token, None, proof=other), "invalid_dpop_proof")

    # A Bearer token (no proof at the token endpoint) still works as before, and is no DPoP token.
    bearer = token_request(metadata, rp, None, grant_type="client_credentials", scope="notify").json()
    assert bearer["token_type"] == "Bearer" and "cnf" not in claims_of(bearer["access_token"])
    assert call("GET", gateway("/v1/templates"), bearer["access_token"], None, scheme="Bearer").status_code == 200
    assert call("GET", gateway("/v1/templates"), bearer["access_token"], key).status_code == 401

    # Proofs refused at the token endpoint: replayed, for another URL, by EdDSA and RSA keys accepted.
    replayed = key.proof("POST", metadata["token_endpoint"])
    assert token_request(metadata, rp, None, proof=replayed, grant_type="client_credentials").status_code == 200
    again = token_request(metadata, rp, None, proof=replayed, grant_type="client_credentials")
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof", again.text
    elsewhere = token_request(metadata, rp, None, proof=key.proof("POST", platform.gateway + "/oidc/par"),
                              grant_type="client_credentials")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_dpop_proof", elsewhere.text
    for kind in ({"kty": "OKP", "crv": "Ed25519"}, {"kty": "RSA", "size": 2048}):
        other_key = DPoPKey(**kind)
        answer = token_request(metadata, rp, other_key, grant_type="client_credentials", scope="notify").json()
        assert claims_of(answer["access_token"])["cnf"]["jkt"] == other_key.jkt
        assert call("GET", gateway("/v1/templates"), answer["access_token"], other_key).status_code == 200


async def test_code_flow_dpop_bound_client_with_nonce_refresh_and_userinfo(platform, kiosk, metadata, tmp_path):
    rp = register(platform, client_name="DPoP Portal", scope="openid offline_access", dpop_bound_access_tokens=True)
    assert rp["dpop_bound_access_tokens"] is True
    citizen = await enrolled_app(platform, kiosk, tmp_path, "dpop-phone")
    key = DPoPKey()
    url, verifier = authorize_url(metadata, rp["client_id"], scope="openid offline_access")
    outcome = await citizen.open_link(app_link_of(requests.get(url, timeout=10).text))
    code = re.search(r"[?&]code=([^&]+)", outcome["redirect_to"]).group(1)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}

    # This client registered dpop_bound_access_tokens: no proof, no tokens; then the server's nonce is asked for.
    missing = token_request(metadata, rp, None, **form)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_dpop_proof", missing.text
    asked = token_request(metadata, rp, key, **form)
    assert asked.status_code == 400 and asked.json()["error"] == "use_dpop_nonce", asked.text
    nonce = asked.headers["DPoP-Nonce"]
    granted = token_request(metadata, rp, key, nonce=nonce, **form)
    assert granted.status_code == 200, granted.text
    tokens = granted.json()
    assert tokens["token_type"] == "DPoP" and claims_of(tokens["access_token"])["cnf"] == {"jkt": key.jkt}
    access = tokens["access_token"]

    userinfo = metadata["userinfo_endpoint"]
    seen = call("GET", userinfo, access, key)
    assert seen.status_code == 200 and seen.json()["sub"] == claims_of(tokens["id_token"])["sub"], seen.text
    refused(call("GET", userinfo, access, None, scheme="Bearer"), "invalid_token")
    refused(call("GET", userinfo, access, None, proof=key.proof("POST", userinfo, access_token=access)), "invalid_dpop_proof")
    auth_direct = platform.stack.config.service_url("auth") + "/oidc/userinfo"
    assert call("GET", auth_direct, access, None, proof=key.proof("GET", userinfo, access_token=access)).status_code == 200

    # The refresh token is bound to the key too: another key's proof is invalid_grant (and does not burn it).
    thief = DPoPKey()
    stolen = token_request(metadata, rp, thief, nonce=nonce, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant", stolen.text
    refreshed = token_request(metadata, rp, key, nonce=nonce, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["token_type"] == "DPoP" and claims_of(refreshed.json()["access_token"])["cnf"]["jkt"] == key.jkt
    assert call("GET", userinfo, refreshed.json()["access_token"], key).status_code == 200


# --- Node's openid-client v6: its own DPoP proofs and nonce handling (tests/interop/node/dpop.mjs) -------------

def dpop_mjs(node: str, *args: str) -> dict:
    result = subprocess.run([node, "dpop.mjs", *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"node dpop.mjs {args[0]} exited {result.returncode}:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


async def test_openid_client_gets_and_uses_dpop_bound_tokens(platform, kiosk, metadata, node, tmp_path):
    # A client registered dpop_bound_access_tokens: openid-client must answer use_dpop_nonce itself.
    rp = register(platform, client_name="Node DPoP Portal", scope="openid offline_access", dpop_bound_access_tokens=True)
    citizen = await enrolled_app(platform, kiosk, tmp_path, "node-dpop-phone")
    issuer, client_id, secret = platform.gateway, rp["client_id"], rp["client_secret"]
    started = dpop_mjs(node, "start", issuer, client_id, secret, REDIRECT)
    outcome = await citizen.open_link(app_link_of(requests.get(started["url"], timeout=10).text))
    finished = dpop_mjs(node, "finish", issuer, client_id, secret, outcome["redirect_to"],
                        started["code_verifier"], started["state"], started["nonce"])
    assert finished["token_type"].lower() == "dpop" and "jkt" in claims_of(finished["access_token"])["cnf"]
    assert finished["userinfo"]["sub"]
    assert finished["other_key_refresh"] == "invalid_grant"
    assert finished["refreshed_token_type"].lower() == "dpop"
    # Without its proof the token is refused.
    refused(call("GET", metadata["userinfo_endpoint"], finished["access_token"], None, scheme="Bearer"), "invalid_token")

    agency = register(platform, client_name="Node DPoP Agency", scope="notify")
    answer = dpop_mjs(node, "agency", issuer, agency["client_id"], agency["client_secret"])
    assert answer["token_type"].lower() == "dpop" and answer["templates_status"] == 200, answer
    refused(call("GET", issuer + "/v1/templates", answer["access_token"], None, scheme="Bearer"), "invalid_token")

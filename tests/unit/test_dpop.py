"""DPoP proofs (RFC 9449, libs/tokens/dpop.py): each claim wrong is refused; the replay cache and server nonces."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from jwcrypto import jwk, jws

from libs import base64url
from libs.tokens import dpop

URL = "http://127.0.0.1:8000/v1/templates"
TOKEN = "eyJ.the.token"


def make_proof(key: jwk.JWK, *, alg: str = "ES256", header: dict | None = None, drop: tuple[str, ...] = (), **claims) -> str:
    body = {"jti": uuid.uuid4().hex, "htm": "GET", "htu": URL, "iat": int(time.time()), "ath": dpop.access_token_hash(TOKEN), **claims}
    for name in drop:
        body.pop(name)
    header = header or {}
    protected = {"typ": "dpop+jwt", "alg": alg, "jwk": header["jwk"] if "jwk" in header else key.export_public(as_dict=True), **header}
    signed = jws.JWS(json.dumps(body).encode())
    signed.add_signature(key, alg=alg, protected=json.dumps(protected))
    return signed.serialize(compact=True)


@pytest.fixture(scope="module")
def key() -> jwk.JWK:
    return jwk.JWK.generate(kty="EC", crv="P-256")


def check(proof: str, **kwargs):
    return dpop.verify_proof(proof, method=kwargs.pop("method", "GET"), url=kwargs.pop("url", URL),
                             access_token=kwargs.pop("access_token", TOKEN), **kwargs)


@pytest.mark.parametrize(("kty", "alg"), [({"kty": "EC", "crv": "P-256"}, "ES256"), ({"kty": "OKP", "crv": "Ed25519"}, "EdDSA"),
                                          ({"kty": "RSA", "size": 2048}, "RS256")])
def test_a_good_proof_gives_the_keys_rfc7638_thumbprint(kty, alg):
    key = jwk.JWK.generate(**kty)
    proof = check(make_proof(key, alg=alg))
    assert proof.jkt == key.thumbprint() == dpop.thumbprint(key.export_public(as_dict=True))


def test_the_url_is_compared_without_query_and_in_normal_form(key):
    assert check(make_proof(key, htu="HTTP://127.0.0.1:8000/v1/templates"), url=URL + "?page=2").jkt == key.thumbprint()
    assert dpop.normalized_url("https://Example.org:443/a?b#c") == "https://example.org/a"


@pytest.mark.parametrize(("change", "message"), [
    ({"htm": "POST"}, "htm"),
    ({"htu": "http://127.0.0.1:8000/v1/notifications"}, "htu"),
    ({"htu": "http://127.0.0.1:8001/v1/templates"}, "htu"),
    ({"iat": int(time.time()) - 3600}, "iat"),
    ({"iat": int(time.time()) + 3600}, "iat"),
    ({"iat": "now"}, "iat"),
    ({"ath": dpop.access_token_hash("another token")}, "ath"),
    ({"jti": "short"}, "jti"),
    ({"drop": ("jti",)}, "jti"),
    ({"drop": ("ath",)}, "ath"),
    ({"drop": ("htm",)}, "htm"),
    ({"drop": ("iat",)}, "iat"),
])
def test_each_claim_wrong_is_refused(key, change, message):
    with pytest.raises(dpop.InvalidProof, match=message):
        check(make_proof(key, **change))


@pytest.mark.parametrize(("header", "message"), [
    ({"typ": "JWT"}, "typ"),
    ({"jwk": None}, "jwk"),
])
def test_a_wrong_header_is_refused(key, header, message):
    with pytest.raises(dpop.InvalidProof, match=message):
        check(make_proof(key, header=header))


def test_a_private_key_in_the_header_is_refused(key):
    with pytest.raises(dpop.InvalidProof, match="private"):
        check(make_proof(key, header={"jwk": key.export_private(as_dict=True)}))


def test_a_symmetric_or_unlisted_algorithm_is_refused(key):
    secret = jwk.JWK.generate(kty="oct", size=256)
    with pytest.raises(dpop.InvalidProof, match="alg"):
        check(make_proof(secret, alg="HS256", header={"jwk": secret.export(as_dict=True)}))
    p384 = jwk.JWK.generate(kty="EC", crv="P-384")
    with pytest.raises(dpop.InvalidProof, match="alg"):
        check(make_proof(p384, alg="ES384"))


def test_a_key_that_does_not_fit_the_algorithm_is_refused(key):
    p384 = jwk.JWK.generate(kty="EC", crv="P-384")
    with pytest.raises(dpop.InvalidProof, match="does not fit"):
        check(make_proof(key, header={"jwk": p384.export_public(as_dict=True)}))
    short_rsa = jwk.JWK.generate(kty="RSA", size=1024)
    with pytest.raises(dpop.InvalidProof, match="too short"):
        check(make_proof(short_rsa, alg="RS256"))


def test_a_signature_by_another_key_is_refused(key):
    other = jwk.JWK.generate(kty="EC", crv="P-256")
    proof = make_proof(other, header={"jwk": key.export_public(as_dict=True)})
    with pytest.raises(dpop.InvalidProof, match="signature"):
        check(proof)


def test_an_altered_payload_is_refused(key):
    head, payload, signature = make_proof(key).split(".")
    claims = json.loads(base64url.decode(payload))
    claims["htm"] = "GET"
    claims["jti"] = uuid.uuid4().hex
    with pytest.raises(dpop.InvalidProof, match="signature"):
        check(".".join([head, base64url.encode(json.dumps(claims).encode()), signature]))


@pytest.mark.parametrize("garbage", [None, "", "a.b", "a.b.c", "x" * 9000])
def test_garbage_is_refused(garbage):
    with pytest.raises(dpop.InvalidProof):
        check(garbage)


def test_the_token_endpoint_needs_no_ath(key):
    proof = make_proof(key, htm="POST", htu="http://127.0.0.1:8000/oidc/token", drop=("ath",))
    assert dpop.verify_proof(proof, method="POST", url="http://127.0.0.1:8000/oidc/token").jkt == key.thumbprint()


def test_the_replay_cache_refuses_a_jti_until_its_window_ends():
    cache = dpop.ReplayCache(ttl_s=60)
    assert cache.first_use("k:1", now=0) and not cache.first_use("k:1", now=59)
    assert cache.first_use("k:2", now=30)
    assert cache.first_use("k:1", now=61)  # the window ended: a proof this old is refused for its iat anyway
    assert len(cache) == 2


def test_the_replay_cache_is_bounded():
    cache = dpop.ReplayCache(ttl_s=60, max_entries=3)
    for n in range(10):
        assert cache.first_use(f"k:{n}", now=0)
    assert len(cache) <= 3


def test_server_nonces_are_accepted_for_two_windows():
    clock = [1000.0]
    nonces = dpop.Nonces(b"k" * 32, window_s=300, clock=lambda: clock[0])
    nonce = nonces.current()
    assert nonces.ok(nonce) and not nonces.ok(None) and not nonces.ok("forged")
    clock[0] += 300
    assert nonces.ok(nonce) and nonces.current() != nonce
    clock[0] += 300
    assert not nonces.ok(nonce)
    assert not dpop.Nonces(b"x" * 32, window_s=300, clock=lambda: clock[0]).ok(nonces.current())


def test_a_proof_without_the_nonce_asks_for_one(key):
    nonces = dpop.Nonces(b"k" * 32)
    with pytest.raises(dpop.NonceRequired):
        check(make_proof(key), nonce_ok=nonces.ok)
    with pytest.raises(dpop.NonceRequired):
        check(make_proof(key, nonce="stale"), nonce_ok=nonces.ok)
    assert check(make_proof(key, nonce=nonces.current()), nonce_ok=nonces.ok).jkt == key.thumbprint()


# --- libs/callers.check_sender: how a token is presented, on a request -------------------------------------------

from types import SimpleNamespace  # noqa: E402

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import make_mocked_request  # noqa: E402
from multidict import CIMultiDict  # noqa: E402

from libs.callers import InvalidAccessToken, InvalidDPoPProof, InvalidDPoPToken, check_sender  # noqa: E402
from services.auth.oidc import dpop as auth_dpop  # noqa: E402

ISSUER = "http://127.0.0.1:8000"


def presented(app: web.Application, *proofs: str, path: str = "/v1/templates?page=2", method: str = "GET"):
    headers = CIMultiDict(("DPoP", p) for p in proofs)
    return make_mocked_request(method, path, headers=headers, app=app)


def test_a_bound_token_needs_the_dpop_scheme_and_its_proof(key):
    app, claims = web.Application(), {"cnf": {"jkt": key.thumbprint()}}
    with pytest.raises(InvalidDPoPToken) as refused:
        check_sender(presented(app), ISSUER, "Bearer", TOKEN, claims)
    assert refused.value.headers["WWW-Authenticate"].startswith('DPoP realm="harbour-id", error="invalid_token"')
    with pytest.raises(InvalidDPoPProof):
        check_sender(presented(app), ISSUER, "DPoP", TOKEN, claims)  # no proof
    proof = make_proof(key)
    with pytest.raises(InvalidDPoPProof):
        check_sender(presented(app, proof, proof), ISSUER, "DPoP", TOKEN, claims)  # two proofs
    check_sender(presented(app, proof), ISSUER, "DPoP", TOKEN, claims)  # the issuer's URL + the path, query left out
    with pytest.raises(InvalidDPoPProof, match="already used"):
        check_sender(presented(app, proof), ISSUER, "DPoP", TOKEN, claims)
    # Another process (another app) has its own window.
    check_sender(presented(web.Application(), proof), ISSUER, "DPoP", TOKEN, claims)


def test_a_proof_by_another_key_or_for_another_request_is_refused(key):
    app, claims = web.Application(), {"cnf": {"jkt": key.thumbprint()}}
    other = jwk.JWK.generate(kty="EC", crv="P-256")
    with pytest.raises(InvalidDPoPProof, match="bound to"):
        check_sender(presented(app, make_proof(other)), ISSUER, "DPoP", TOKEN, claims)
    with pytest.raises(InvalidDPoPProof, match="htm"):
        check_sender(presented(app, make_proof(key), method="POST"), ISSUER, "DPoP", TOKEN, claims)
    with pytest.raises(InvalidDPoPProof, match="htu"):
        check_sender(presented(app, make_proof(key), path="/v1/notifications"), ISSUER, "DPoP", TOKEN, claims)


def test_an_unbound_token_is_a_bearer_token_only():
    app = web.Application()
    check_sender(presented(app), ISSUER, "Bearer", TOKEN, {"sub": "x"})
    with pytest.raises(InvalidAccessToken):
        check_sender(presented(app), ISSUER, "DPoP", TOKEN, {"sub": "x"})


@pytest.mark.parametrize(("mode", "bound", "wanted"), [
    ("off", True, False), ("bound", False, False), ("bound", True, True), ("always", False, True), ("typo", False, True)])
def test_who_is_asked_for_a_server_nonce(mode, bound, wanted):
    auth = SimpleNamespace(settings=SimpleNamespace(dpop_nonce=mode))
    client = SimpleNamespace(metadata=SimpleNamespace(dpop_bound_access_tokens=bound))
    assert auth_dpop.wants_nonce(auth, client) is wanted

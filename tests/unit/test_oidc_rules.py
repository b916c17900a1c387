"""The OpenID Connect provider's pure rules: PKCE, pairwise subjects, authorization request checks."""

from __future__ import annotations

import base64
import hashlib

import pytest
from multidict import MultiDict

from services.auth.clients.metadata import ClientMetadata
from services.auth.clients.registry import Client
from services.auth.oidc.authorization import parse_request, redirect_url, single_params
from services.auth.oidc.errors import OAuthError, ResponseTarget
from services.auth.oidc.pairwise import pairwise_sub
from services.auth.oidc.pkce import check_challenge, s256, verifier_matches
from services.auth.oidc.tokens import at_hash

REDIRECT = "https://rp.example/cb"
CLIENT = Client("rp-1", ClientMetadata(client_name="RP", redirect_uris=[REDIRECT], scope="openid formfill"))
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


def params(**overrides) -> dict[str, str]:
    values = {
        "client_id": "rp-1", "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
        "state": "s", "code_challenge": s256(VERIFIER), "code_challenge_method": "S256",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def test_pkce_matches_the_rfc_7636_example():
    assert s256(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B
    assert verifier_matches(VERIFIER, s256(VERIFIER))
    assert not verifier_matches(VERIFIER[:-1] + "x", s256(VERIFIER))
    assert not verifier_matches("short", s256("short"))
    assert check_challenge(s256(VERIFIER), "plain") and check_challenge(None, "S256") and check_challenge("x", "S256")
    assert check_challenge(s256(VERIFIER), "S256") is None


def test_pairwise_subjects_are_stable_per_sector_and_unlinkable_across():
    key = b"k" * 32
    assert pairwise_sub(key, "client:a", "acct-1") == pairwise_sub(key, "client:a", "acct-1")
    assert pairwise_sub(key, "client:a", "acct-1") != pairwise_sub(key, "client:b", "acct-1")
    assert pairwise_sub(key, "client:a", "acct-1") != pairwise_sub(key, "client:a", "acct-2")
    assert pairwise_sub(b"j" * 32, "client:a", "acct-1") != pairwise_sub(key, "client:a", "acct-1")
    assert "acct-1" not in pairwise_sub(key, "client:a", "acct-1")


def test_sector_is_the_client_unless_declared():
    assert CLIENT.sector == "client:rp-1"
    shared = Client("rp-2", ClientMetadata(client_name="RP2", redirect_uris=[REDIRECT], sector_identifier_uri="https://group.example/sector.json"))
    assert shared.sector == "sector:group.example"


def test_a_good_request_parses():
    request = parse_request(CLIENT, params(scope="openid formfill", prompt="login", max_age="300", acr_values="urn:harbour-id:loa:plus x"))
    assert request.scope == "openid formfill" and request.max_age == 300
    assert request.required_acr() == "urn:harbour-id:loa:plus"


@pytest.mark.parametrize(
    "overrides",
    [{"redirect_uri": REDIRECT + "/x"}, {"redirect_uri": "https://rp.example/cb?x=1"}, {"redirect_uri": None}],
)
def test_redirect_problems_are_not_redirected(overrides):
    with pytest.raises(OAuthError) as bad_redirect:
        parse_request(CLIENT, params(**overrides))
    assert bad_redirect.value.error == "invalid_request" and bad_redirect.value.back_to is None
    with pytest.raises(OAuthError) as unknown_client:
        parse_request(None, params())
    assert unknown_client.value.error == "invalid_client" and unknown_client.value.back_to is None


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "formfill"}, "invalid_scope"),
        ({"scope": "openid sign"}, "invalid_scope"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
    ],
)
def test_other_problems_go_back_to_the_client(overrides, error):
    with pytest.raises(OAuthError) as exc:
        parse_request(CLIENT, params(**overrides))
    # (An unusable response_mode is answered in the default one, query.)
    assert exc.value.error == error and exc.value.back_to == ResponseTarget(REDIRECT, "query", "s")


def test_repeated_parameters_are_refused():
    with pytest.raises(OAuthError) as repeated:
        single_params(MultiDict([("client_id", "a"), ("client_id", "b")]))
    assert repeated.value.error == "invalid_request" and repeated.value.back_to is None


def test_redirect_url_keeps_an_existing_query_and_encodes():
    assert redirect_url("https://rp.example/cb?x=1", {"code": "a b", "state": None}) == "https://rp.example/cb?x=1&code=a+b"


def test_at_hash_is_the_left_half_of_sha256():
    token = "an-access-token"
    expected = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()[:16]).rstrip(b"=").decode()
    assert at_hash(token) == expected

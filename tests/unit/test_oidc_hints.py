"""The pure rules of re-authentication (issue 18): reading login_hint / id_token_hint, the sub they name, max_age, and
verifying an ID token as a hint (expired accepted, anything else still checked)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import MultiDict

from libs.tokens.jws import InvalidToken, sign, verify
from services.auth.oidc.authorization import parse_request, single_params
from services.auth.oidc.errors import InvalidRequest
from services.auth.oidc.hints import HintRefused, hinted_subject
from services.auth.oidc.messages import MESSAGES
from services.auth.oidc.silent_login import too_old

from .test_oidc_pages import login
from .test_oidc_rules import CLIENT, params


def test_hints_are_read_and_an_empty_one_is_absent():
    hinted = parse_request(CLIENT, params(login_hint="sub-1", id_token_hint="a.b.c"))
    assert (hinted.login_hint, hinted.id_token_hint, hinted.hinted) == ("sub-1", "a.b.c", True)
    plain = parse_request(CLIENT, params(login_hint="", id_token_hint=""))
    assert (plain.login_hint, plain.id_token_hint, plain.hinted) == (None, None, False)
    # Never stored with the transaction: the login keeps the account they name instead.
    assert "login_hint" not in hinted.to_doc() and "id_token_hint" not in hinted.to_doc()


@pytest.mark.parametrize("name", ["login_hint", "id_token_hint"])
def test_a_repeated_hint_is_an_invalid_request(name):
    with pytest.raises(InvalidRequest, match=f"{name} is repeated"):
        single_params(MultiDict([(name, "a"), (name, "b")]))


def test_the_hints_name_one_sub_or_are_refused():
    assert hinted_subject(None, None) is None
    assert hinted_subject("sub-1", None) == "sub-1"
    assert hinted_subject(None, "sub-2") == "sub-2"
    assert hinted_subject("sub-2", "sub-2") == "sub-2"
    with pytest.raises(HintRefused, match="different citizens"):
        hinted_subject("sub-1", "sub-2")


def test_max_age_zero_always_asks_again_and_a_positive_one_only_when_older():
    assert too_old(1000, 1000.0, 0)  # max_age=0 = prompt=login, even in the same second
    assert not too_old(1000, 1000.9, None)
    assert not too_old(1000, 1060.0, 60)
    assert too_old(1000, 1060.5, 60)


def test_an_expired_token_verifies_as_a_hint_and_nothing_else_is_relaxed():
    key, intruder = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {"iss": "https://id.example", "sub": "s", "aud": "rp-1", "iat": now - 7200, "exp": now - 3600}
    expired = sign(claims, key)
    with pytest.raises(InvalidToken, match="expired"):
        verify(expired, key.public_key(), audience="rp-1", issuer="https://id.example")
    assert verify(expired, key.public_key(), audience="rp-1", issuer="https://id.example", accept_expired=True)["sub"] == "s"
    # ...also when judged at a given instant.
    assert verify(expired, key.public_key(), audience="rp-1", accept_expired=True, now=datetime.now(UTC))["sub"] == "s"
    for refused, kwargs in (
        (sign(claims, intruder), {}),                                            # another key
        (expired, {"audience": "rp-2"}),                                         # another client
        (expired, {"issuer": "https://elsewhere.example"}),                     # another issuer
        (sign({k: v for k, v in claims.items() if k != "exp"}, key), {"require": ("exp",)}),  # no exp at all
        (pyjwt.encode(claims, "secret", algorithm="HS256"), {}),                 # not ES256
    ):
        options = {"audience": "rp-1", "issuer": "https://id.example", **kwargs}
        with pytest.raises(InvalidToken):
            verify(refused, key.public_key(), accept_expired=True, **options)


@pytest.mark.parametrize("language", ["en", "zh-HK"])
def test_the_login_page_says_when_the_prompt_was_sent_to_the_phone(language):
    sent = login(language=language, sent_to_phone=True)
    assert 'id="sent-to-phone"' in sent and MESSAGES[language]["sent_to_phone"] in sent
    assert 'id="sent-to-phone"' not in login(language=language)

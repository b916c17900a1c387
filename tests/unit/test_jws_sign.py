"""libs/tokens/jws.sign builds ES256 tokens itself: they must be what PyJWT makes (header and payload byte for byte)
and verify with stock verifiers (PyJWT, jwcrypto); what PyJWT refuses, it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk, jws

from libs.tokens import generate_private_key
from libs.tokens.jws import sign

KEY = generate_private_key()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
payloads = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
headers = st.none() | st.fixed_dictionaries({}, optional={
    "kid": st.text(max_size=43), "typ": st.sampled_from(["JWT", "at+jwt", "logout+jwt", "", None]),
    "cty": st.text(max_size=5),
})


@settings(max_examples=300, deadline=None)
@given(payload=payloads, header=headers, exp=st.none() | times | st.integers(0, 2**32), iss=st.none() | st.text(max_size=20))
def test_tokens_are_pyjwts_byte_for_byte_and_verify(payload, header, exp, iss):
    if exp is not None:
        payload = {**payload, "exp": exp}
    if iss is not None:
        payload = {**payload, "iss": iss}
    ours = sign(payload, KEY, header)
    theirs = jwt.encode(payload, KEY, algorithm="ES256", headers=header)
    assert ours.split(".")[:2] == theirs.split(".")[:2]
    assert len(ours.split(".")[2]) == 86  # 64 bytes: r and s, not DER
    assert jwt.api_jws.decode_complete(ours, KEY.public_key(), algorithms=["ES256"])["payload"] == \
        jwt.api_jws.decode_complete(theirs, KEY.public_key(), algorithms=["ES256"])["payload"]


def test_a_stock_verifier_accepts_the_signature():
    token = sign({"sub": "a", "iat": datetime(2026, 1, 1, tzinfo=UTC)}, KEY, {"kid": "k1", "typ": "at+jwt"})
    verified = jws.JWS()
    verified.deserialize(token)
    verified.verify(jwk.JWK.from_pyca(KEY.public_key()), alg="ES256")
    assert verified.payload == b'{"sub":"a","iat":1767225600}'


def test_a_signature_over_other_bytes_does_not_verify():
    header, payload, signature = sign({"sub": "a"}, KEY).split(".")
    forged = ".".join((header, sign({"sub": "b"}, KEY).split(".")[1], signature))
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, KEY.public_key(), algorithms=["ES256"])


@pytest.mark.parametrize(("payload", "key", "header", "error"), [
    ([1], KEY, None, TypeError),
    ({"iss": 5}, KEY, None, TypeError),
    ({}, ec.generate_private_key(ec.SECP384R1()), None, TypeError),
    ({}, KEY.public_key(), None, TypeError),
    ({}, KEY, {"alg": "HS256"}, ValueError),
    ({}, KEY, {"alg": "none"}, ValueError),
    ({}, KEY, {"kid": 7}, TypeError),
])
def test_what_cannot_be_an_es256_token_is_refused(payload, key, header, error):
    with pytest.raises(error):
        sign(payload, key, header)

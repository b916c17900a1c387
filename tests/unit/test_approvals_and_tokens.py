"""The shared approval pieces and ES256 token checks: pure logic, no network."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from libs.approvals import (
    ApprovalRequest,
    DecisionRejected,
    Requester,
    canonical_json,
    decision_device_id,
    sign_decision,
    verify_decision,
)
from libs.tokens import InvalidKey, InvalidToken, generate_private_key, load_public_jwk, public_jwk, sign, thumbprint, verify

from ..support.prompts import fixed_request


def test_canonical_json_is_order_independent_and_utf8():
    assert canonical_json({"b": 1, "a": "陳"}) == canonical_json({"a": "陳", "b": 1}) == '{"a":"陳","b":1}'.encode()


def test_digest_covers_everything_shown_and_survives_a_round_trip():
    base = fixed_request()
    assert len(base.digest()) == 43
    assert ApprovalRequest.model_validate(base.model_dump(mode="json")).digest() == base.digest()
    for changed in (
        fixed_request(purpose="Close an account"),
        fixed_request(details={"fields": ["name_en", "phone", "address"]}),
        fixed_request(requester=Requester(service="formfill", client_id="rp-2", client_name="Demo Bank")),
        fixed_request(expires_at=datetime(2030, 1, 1, 8, 0, 1, tzinfo=UTC)),
    ):
        assert changed.digest() != base.digest()
    # Sub-second precision is dropped so stores that round it cannot change the digest.
    assert fixed_request(expires_at=datetime(2030, 1, 1, 8, 0, 0, tzinfo=UTC)).digest() == base.digest()


def test_naive_expiry_is_refused():
    with pytest.raises(ValueError):
        fixed_request(expires_at=datetime(2030, 1, 1))


def test_a_signed_decision_verifies_only_for_its_approval_digest_and_key():
    key = generate_private_key()
    prompt = fixed_request()
    token = sign_decision(key, device_id="dev-1", approval_id=prompt.approval_id, digest=prompt.digest(), decision="approve", selection=["phone"])
    assert decision_device_id(token) == "dev-1"
    claims = verify_decision(token, key.public_key(), approval_id=prompt.approval_id, digest=prompt.digest())
    assert claims.decision == "approve" and claims.selection == ["phone"]
    with pytest.raises(DecisionRejected) as other_key:
        verify_decision(token, generate_private_key().public_key(), approval_id=prompt.approval_id, digest=prompt.digest())
    assert other_key.value.reason == "bad-signature"
    with pytest.raises(DecisionRejected) as other_approval:
        verify_decision(token, key.public_key(), approval_id="appr-other-000", digest=prompt.digest())
    assert other_approval.value.reason == "wrong-approval"
    with pytest.raises(DecisionRejected) as other_digest:
        verify_decision(token, key.public_key(), approval_id=prompt.approval_id, digest=fixed_request(purpose="x").digest())
    assert other_digest.value.reason == "digest-mismatch"


def test_a_decision_must_be_a_decision_jwt():
    key = generate_private_key()
    now = int(time.time())
    plain = sign({"approval_id": "appr-0123456789", "iat": now, "exp": now + 60, "jti": "j" * 16}, key, headers={"kid": "d"})
    with pytest.raises(DecisionRejected, match="token type must be harbour-decision\\+jwt") as untyped:
        verify_decision(plain, key.public_key(), approval_id="appr-0123456789", digest="A" * 43)
    assert untyped.value.reason == "bad-signature"
    with pytest.raises(DecisionRejected) as malformed:
        decision_device_id("not.a-token")
    assert malformed.value.reason == "malformed"


def test_only_es256_is_accepted():
    key = generate_private_key()
    now = int(time.time())
    claims = {"sub": "x", "iat": now, "exp": now + 60}
    unsigned = jwt.encode(claims, None, algorithm="none")
    hmac_signed = jwt.encode(claims, "k" * 32, algorithm="HS256")
    p384 = jwt.encode(claims, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384")
    for token in (unsigned, hmac_signed, p384):
        with pytest.raises(InvalidToken):
            verify(token, key.public_key())
    assert verify(sign(claims, key), key.public_key())["sub"] == "x"


def test_expired_and_wrong_audience_tokens_are_refused():
    key = generate_private_key()
    now = int(time.time())
    with pytest.raises(InvalidToken, match="expired"):
        verify(sign({"iat": now - 600, "exp": now - 300}, key), key.public_key())
    with pytest.raises(InvalidToken, match="audience"):
        verify(sign({"iat": now, "exp": now + 60, "aud": "someone-else"}, key), key.public_key(), audience="harbour-device")


def test_public_jwks_are_p256_public_keys_only():
    key = generate_private_key()
    jwk = public_jwk(key)
    assert load_public_jwk(jwk).public_numbers() == key.public_key().public_numbers()
    assert len(thumbprint(jwk)) == 43
    for bad in ({**jwk, "d": "secret"}, {**jwk, "crv": "P-384"}, {"kty": "RSA"}, {**jwk, "x": "AAAA"}, "not a dict"):
        with pytest.raises(InvalidKey):
            load_public_jwk(bad)

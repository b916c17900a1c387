"""services/auth/devices/passkeys.py and protection.py: what a passkey registration and assertion must be (py_webauthn
verifies, a software authenticator answers) and the amr a verified one gives."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from libs import base64url
from libs.approvals import DecisionClaims
from services.auth.devices.binding import ActivationRequest
from services.auth.devices.passkeys import PasskeyAssertion, PasskeyRegistration, verify_assertion, verify_registration
from services.auth.devices.protection import authentication_methods
from services.auth.errors import ClonedAuthenticator, InvalidPasskey, UserVerificationRequired

from ..support.webauthn_authenticator import SoftAuthenticator

RP, ORIGIN, NONCE = "localhost", "http://localhost:8000", "a-single-use-nonce"
DIGEST = base64url.encode(hashlib.sha256(b"the prompt").digest())


def registered(authenticator: SoftAuthenticator) -> dict:
    registration = PasskeyRegistration.model_validate(authenticator.register(NONCE.encode()))
    return verify_registration(registration, nonce=NONCE, rp_id=RP, origin=ORIGIN, now=datetime.now(UTC))


def asserted(authenticator: SoftAuthenticator, stored: dict, **options) -> int:
    assertion = PasskeyAssertion.model_validate(authenticator.assertion(base64url.decode(DIGEST), **options))
    return verify_assertion(assertion, stored, digest=DIGEST, rp_id=RP, origin=ORIGIN)


def test_amr_says_user_and_mfa_only_for_a_verified_passkey():
    assert authentication_methods("software", "passkey", "passkey", passkey_verified=True) == ["swk", "user", "mfa"]
    assert authentication_methods("software", "passkey", "passkey") == ["swk"]  # the claim alone proves nothing
    assert authentication_methods("software", "passkey", "pin") == ["swk"]
    assert authentication_methods("software", "pin", "pin", passkey_verified=True) == ["swk", "pin"]
    assert authentication_methods("software", "none", None) == ["swk"]


def test_a_registration_stores_the_credential_and_refuses_what_does_not_verify():
    authenticator = SoftAuthenticator(RP, ORIGIN)
    stored = registered(authenticator)
    assert stored["credential_id"] == base64url.encode(authenticator.credential_id) and stored["sign_count"] == 0
    for options in ({"user_verified": False}, {"origin": "http://127.0.0.1:8000"}, {"rp_id": "evil.example"}):
        registration = PasskeyRegistration.model_validate(authenticator.register(NONCE.encode(), **options))
        with pytest.raises(InvalidPasskey):
            verify_registration(registration, nonce=NONCE, rp_id=RP, origin=ORIGIN, now=datetime.now(UTC))
    with pytest.raises(InvalidPasskey):
        verify_registration(PasskeyRegistration.model_validate(authenticator.register(b"another")), nonce=NONCE,
                            rp_id=RP, origin=ORIGIN, now=datetime.now(UTC))


def test_the_browsers_tojson_members_are_read_and_unknown_ones_ignored():
    authenticator = SoftAuthenticator(RP, ORIGIN)
    answer = authenticator.register(NONCE.encode())
    answer["response"] |= {"publicKeyAlgorithm": -7, "publicKey": "MFkw", "authenticatorData": "AAAA"}
    answer["hints"] = ["client-device"]
    registration = PasskeyRegistration.model_validate(answer)
    assert verify_registration(registration, nonce=NONCE, rp_id=RP, origin=ORIGIN, now=datetime.now(UTC))
    with pytest.raises(ValidationError):  # what it knows is checked
        PasskeyRegistration.model_validate({**answer, "type": "password"})
    with pytest.raises(ValidationError):
        PasskeyRegistration.model_validate({**answer, "rawId": "not base64url!"})


def test_an_assertion_needs_the_uv_flag_the_digest_the_credential_and_a_growing_count():
    authenticator = SoftAuthenticator(RP, ORIGIN)
    stored = registered(authenticator)
    assert asserted(authenticator, stored) == 1
    stored["sign_count"] = 1
    impostor = SoftAuthenticator(RP, ORIGIN)
    for options in ({"user_verified": False}, {"origin": "https://evil.example"}, {"rp_id": "evil.example"},
                    {"credential_id": impostor.credential_id}, {"signing_key": impostor.key}):
        with pytest.raises(UserVerificationRequired):
            asserted(authenticator, stored, **options)
    with pytest.raises(UserVerificationRequired):
        verify_assertion(None, stored, digest=DIGEST, rp_id=RP, origin=ORIGIN)
    with pytest.raises(UserVerificationRequired):  # another challenge
        other = PasskeyAssertion.model_validate(authenticator.assertion(b"\x01" * 32))
        verify_assertion(other, stored, digest=DIGEST, rp_id=RP, origin=ORIGIN)
    for replayed in (0, 1):
        with pytest.raises(ClonedAuthenticator):
            asserted(authenticator, stored, sign_count=replayed)
    assert asserted(authenticator, stored, sign_count=5) == 5
    # An authenticator that keeps no count (0 and 0) is not a clone.
    counterless = SoftAuthenticator(RP, ORIGIN)
    assert asserted(counterless, registered(counterless), sign_count=0) == 0


def test_the_binding_body_has_a_passkey_exactly_when_its_protection_says_so():
    base = {"account_id": "acct-1", "activation_code": "ABCDE-FGHJK", "public_key": {}, "proof": "x" * 20}
    passkey = SoftAuthenticator(RP, ORIGIN).register(NONCE.encode())
    assert ActivationRequest.model_validate({**base, "key_protection": {"user_verification": "passkey"}, "passkey": passkey})
    with pytest.raises(ValidationError):
        ActivationRequest.model_validate({**base, "key_protection": {"user_verification": "passkey"}})
    with pytest.raises(ValidationError):
        ActivationRequest.model_validate({**base, "passkey": passkey})


def test_a_decision_may_say_it_was_verified_by_a_passkey():
    claims = {"approval_id": "login-1", "digest": DIGEST, "decision": "approve", "iat": 1, "exp": 2, "jti": "j" * 10}
    assert DecisionClaims.model_validate({**claims, "uv": "passkey"}).uv == "passkey"
    with pytest.raises(ValidationError):
        DecisionClaims.model_validate({**claims, "uv": "face"})

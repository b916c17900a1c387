"""Passkey registrations and assertions with random damage (issue 21, helper D): whatever bytes arrive in the
attestation object, its authenticator data, the client data, the signature or the user handle, auth's checks end in
their own refusal (400 invalid-passkey, 403 user-verification-required / cloned-authenticator) or the model's 422 -
never another exception, which would be a 500; and a damaged assertion (all of it signed but the user handle) is
never accepted. Seeded damage (the keys and signatures are new each run)."""

from __future__ import annotations

import hashlib
import json
import os
import random
from datetime import UTC, datetime

import cbor2
from pydantic import ValidationError

from libs import base64url
from services.auth.devices.passkeys import PasskeyAssertion, PasskeyRegistration, verify_assertion, verify_registration
from services.auth.errors import ClonedAuthenticator, InvalidPasskey, UserVerificationRequired

from ..support.webauthn_authenticator import SoftAuthenticator

RP, ORIGIN, NONCE = "localhost", "http://localhost:8000", "a-single-use-nonce"
DIGEST = base64url.encode(hashlib.sha256(b"the prompt").digest())
CASES = 2000


def damaged(rnd: random.Random, data: bytes) -> bytes:
    """`data` with a few bytes changed, cut out or put in (never the same bytes)."""
    out = bytearray(data)
    while bytes(out) == data:
        _damage(rnd, out)
    return bytes(out)


def _damage(rnd: random.Random, out: bytearray) -> None:
    for _ in range(rnd.randint(1, 4)):
        where = rnd.randrange(len(out) + 1)
        kind = rnd.random()
        if kind < 0.4 and out:
            out[min(where, len(out) - 1)] = rnd.randrange(256)
        elif kind < 0.7:
            del out[where:where + rnd.randint(1, 40)]
        else:
            out[where:where] = rnd.randbytes(rnd.randint(1, 20))


def registration(answer: dict) -> None:
    verify_registration(PasskeyRegistration.model_validate(answer), nonce=NONCE, rp_id=RP, origin=ORIGIN,
                        now=datetime.now(UTC))


def test_a_damaged_registration_is_refused_and_nothing_else():
    rnd = random.Random(21)
    good = SoftAuthenticator(RP, ORIGIN).register(NONCE.encode())
    attestation = cbor2.loads(base64url.decode(good["response"]["attestationObject"]))
    unexpected = {}
    for case in range(CASES):
        answer = json.loads(json.dumps(good))
        response = answer["response"]
        kind = case % 4
        if kind == 0:
            response["attestationObject"] = base64url.encode(
                cbor2.dumps({**attestation, "authData": damaged(rnd, attestation["authData"])}))
        elif kind == 1:
            response["attestationObject"] = base64url.encode(damaged(rnd, base64url.decode(response["attestationObject"])))
        elif kind == 2:
            response["clientDataJSON"] = base64url.encode(damaged(rnd, base64url.decode(response["clientDataJSON"])))
        else:
            member = ["fmt", "attStmt", "authData", "extra"][case // 4 % 4]
            value = rnd.choice([1, "none", "packed", {}, [], b"", None, {"alg": -7, "sig": os.urandom(8)}])
            response["attestationObject"] = base64url.encode(cbor2.dumps({**attestation, member: value}))
        try:
            registration(answer)
        except (InvalidPasskey, ValidationError):
            continue
        except Exception as exc:  # noqa: BLE001 - what this test looks for
            unexpected.setdefault(type(exc).__name__, (case, str(exc)[:200]))
        # Accepted is possible: with attestation "none" nothing in the authenticator data is signed (a changed AAGUID,
        # count or flag bit is still a well-formed registration) and a member the object does not define is ignored.
    assert unexpected == {}


def test_a_damaged_assertion_is_refused_and_nothing_else():
    rnd = random.Random(21)
    authenticator = SoftAuthenticator(RP, ORIGIN)
    stored = verify_registration(PasskeyRegistration.model_validate(authenticator.register(NONCE.encode())),
                                 nonce=NONCE, rp_id=RP, origin=ORIGIN, now=datetime.now(UTC))
    unexpected = {}
    members = ["authenticatorData", "clientDataJSON", "signature", "userHandle"]
    for case in range(CASES):
        answer = authenticator.assertion(base64url.decode(DIGEST))
        member = members[case % len(members)]
        answer["response"][member] = base64url.encode(damaged(rnd, base64url.decode(answer["response"][member])))
        try:
            verify_assertion(PasskeyAssertion.model_validate(answer), stored, digest=DIGEST, rp_id=RP, origin=ORIGIN)
        except (UserVerificationRequired, ClonedAuthenticator, ValidationError):
            continue
        except Exception as exc:  # noqa: BLE001 - what this test looks for
            unexpected.setdefault(type(exc).__name__, (case, str(exc)[:200]))
        else:
            # The user handle is not signed: damaging it changes nothing, and that is right.
            if member != "userHandle":
                unexpected.setdefault("accepted", (case, member))
    assert unexpected == {}

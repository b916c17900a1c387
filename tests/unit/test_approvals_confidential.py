"""A prompt's free text sealed to auth and encrypted at rest: pure logic, no network (libs/approvals/confidential.py)."""

from __future__ import annotations

import bson
import pytest

from libs.approvals import PromptUnreadable, clear_part, decrypt_prompt, encrypt_prompt, opened_in_app, seal_prompt, unseal_prompt
from libs.crypto import FieldCipher, Keyring, generate_sealing_key, new_key_value, public_jwk, seal

from ..support.prompts import fixed_request

PURPOSE = "Tenancy for Flat 9B, 12 Secret Road"
DOCUMENT = "divorce-settlement-wong.pdf"


def prompt():
    return fixed_request(action="sign", purpose=PURPOSE, details={"document_name": DOCUMENT, "kind": "pdf", "sha256_start": "ab12"})


def cipher(*kids: str) -> FieldCipher:
    return FieldCipher(Keyring.from_env_value(",".join(new_key_value(k) for k in kids or ("k1",))))


def test_the_sealed_event_shows_only_the_clear_part_and_auth_gets_the_same_request_and_digest():
    key = generate_sealing_key()
    original = prompt()
    data = seal_prompt(original, public_jwk(key))
    raw = bson.encode(data)
    assert PURPOSE.encode() not in raw and DOCUMENT.encode() not in raw
    assert {k: v for k, v in data.items() if k != "sealed_request"} == clear_part(original)
    assert "purpose" not in data and "details" not in data and data["requester"]["client_name"] == "Demo Bank"
    opened = unseal_prompt(data, key)
    assert opened == original and opened.digest() == original.digest()


def test_auth_refuses_an_unsealed_prompt_another_keys_seal_and_a_clear_part_that_differs():
    key, other = generate_sealing_key(), generate_sealing_key()
    original = prompt()
    with pytest.raises(PromptUnreadable):
        unseal_prompt(original.model_dump(mode="json"), key)  # the old, clear form
    with pytest.raises(PromptUnreadable):
        unseal_prompt(seal_prompt(original, public_jwk(other)), key)
    data = seal_prompt(original, public_jwk(key))
    for tampered in ({**data, "account_id": "acct-2"}, {**data, "matching_code": "9999"},
                     {**data, "approval_id": "appr-9999999999"}, {**data, "purpose": "something else"}):
        with pytest.raises(PromptUnreadable):
            unseal_prompt(tampered, key)
    with pytest.raises(PromptUnreadable):  # sealed to auth, but not a request
        unseal_prompt({**data, "sealed_request": seal({"hello": "world"}, public_jwk(key))}, key)


def test_a_prompt_the_app_asked_for_says_so_outside_the_request_and_its_digest():
    key = generate_sealing_key()
    original = prompt()
    asked_by_app = seal_prompt(original, public_jwk(key), opened_in_app=True)
    assert asked_by_app["opened_in_app"] is True and opened_in_app(asked_by_app)
    assert not opened_in_app(seal_prompt(original, public_jwk(key))) and "opened_in_app" not in seal_prompt(original, public_jwk(key))
    assert not opened_in_app({**asked_by_app, "opened_in_app": "yes"})  # only a true flag
    opened = unseal_prompt(asked_by_app, key)
    assert opened == original and opened.digest() == original.digest()
    with pytest.raises(PromptUnreadable):  # the flag beside it does not excuse a clear part that differs
        unseal_prompt({**asked_by_app, "account_id": "acct-2"}, key)


def test_stored_form_keeps_the_free_text_encrypted_and_opens_to_the_same_digest():
    fields = cipher()
    original = prompt()
    stored = encrypt_prompt(fields, original)
    raw = bson.encode({"_id": original.approval_id, **stored})
    assert PURPOSE.encode() not in raw and DOCUMENT.encode() not in raw and b"document_name" not in raw
    assert stored["request"] == clear_part(original)
    # Through BSON and back, as MongoDB returns it.
    opened = decrypt_prompt(fields, bson.decode(raw))
    assert opened == original and opened.digest() == original.digest()


def test_a_stored_prompt_opens_only_as_itself_and_under_a_key_of_the_ring():
    fields = cipher()
    first, second = prompt(), fixed_request(approval_id="appr-9876543210", purpose="Another")
    stored_first, stored_second = encrypt_prompt(fields, first), encrypt_prompt(fields, second)
    with pytest.raises(PromptUnreadable):  # ciphertext moved onto another prompt
        decrypt_prompt(fields, {**stored_second, "sealed": stored_first["sealed"]})
    with pytest.raises(PromptUnreadable):
        decrypt_prompt(cipher("other"), stored_first)
    with pytest.raises(PromptUnreadable):  # a clear document (written before encryption) is not opened as if it were
        decrypt_prompt(fields, {"request": first.model_dump(mode="json")})

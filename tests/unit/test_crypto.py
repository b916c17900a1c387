"""libs.crypto: keyed hashing, field encryption at rest, and sealing checked against jwcrypto."""

from __future__ import annotations

import base64
import json
import os

import bson
import pytest
from joserfc.errors import UnsupportedAlgorithmError
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from libs.crypto import (
    DecryptionError,
    FieldCipher,
    Keyring,
    SealError,
    UnknownKey,
    generate_sealing_key,
    keyed_hash,
    new_key_value,
    normalise_hkid,
    public_jwk,
    seal,
    unseal,
)
from libs.crypto.sealing import MAX_PAYLOAD_BYTES

NAME_ZH = "陳大文"
HKID = "A1234563"
PROFILE = {"name_zh": NAME_ZH, "name_en": "CHAN, Tai Man", "hkid": HKID, "phone": None}


def _keyring(*kids: str) -> Keyring:
    return Keyring.from_env_value(",".join(new_key_value(kid) for kid in kids))


def _flip(blob: bytes, index: int = -1) -> bytes:
    out = bytearray(blob)
    out[index] ^= 0x01
    return bytes(out)


# --- keyed hash ---------------------------------------------------------------


def test_keyed_hash_is_deterministic_lowercase_hex():
    key = os.urandom(32)
    digest = keyed_hash(key, HKID, purpose="hkid")
    assert digest == keyed_hash(key, HKID, purpose="hkid")
    assert len(digest) == 64 and digest == digest.lower()
    int(digest, 16)


def test_keyed_hash_differs_by_purpose_value_and_key():
    key = os.urandom(32)
    digest = keyed_hash(key, HKID, purpose="hkid")
    assert digest != keyed_hash(key, HKID, purpose="activation-code")
    assert digest != keyed_hash(key, "A1234564", purpose="hkid")
    assert digest != keyed_hash(os.urandom(32), HKID, purpose="hkid")


def test_keyed_hash_matches_hmac_sha256_over_purpose_nul_value():
    import hashlib
    import hmac

    key = b"k" * 32
    expected = hmac.new(key, b"hkid\x00" + HKID.encode(), hashlib.sha256).hexdigest()
    assert keyed_hash(key, HKID, purpose="hkid") == expected


@pytest.mark.parametrize("length", [0, 16, 31])
def test_keyed_hash_rejects_short_keys(length):
    with pytest.raises(ValueError):
        keyed_hash(os.urandom(length), HKID, purpose="hkid")


@pytest.mark.parametrize("purpose", ["", "hk\x00id"])
def test_keyed_hash_rejects_ambiguous_purposes(purpose):
    with pytest.raises(ValueError):
        keyed_hash(os.urandom(32), HKID, purpose=purpose)


@pytest.mark.parametrize("raw", ["a123456(3)", "A123456(3)", " a123456 (3) ", "A1234563"])
def test_normalise_hkid(raw):
    assert normalise_hkid(raw) == "A1234563"


# --- keyring ------------------------------------------------------------------


def test_keyring_parses_first_entry_as_current():
    k1, k2 = os.urandom(32), os.urandom(32)
    value = f"2026-02:{base64.urlsafe_b64encode(k1).decode()} , 2025-11:{base64.urlsafe_b64encode(k2).decode().rstrip('=')}"
    ring = Keyring.from_env_value(value)
    assert ring.current() == ("2026-02", k1)
    assert ring.get("2025-11") == k2
    with pytest.raises(UnknownKey):
        ring.get("1999-01")
    assert isinstance(UnknownKey("x"), KeyError)


def test_keyring_repr_shows_no_key_material():
    key = os.urandom(32)
    ring = Keyring(current_id="k1", keys={"k1": key})
    assert repr(key) not in repr(ring) and "keys" not in repr(ring)


def test_new_key_value_round_trips():
    value = new_key_value("dev")
    kid, _ = value.split(":")
    assert kid == "dev"
    assert len(Keyring.from_env_value(value).get("dev")) == 32
    assert new_key_value("dev") != value


SECRET_LOOKING = base64.urlsafe_b64encode(b"s" * 16).decode()  # 16 bytes: too short


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "k1",  # no colon
        f"k1:{SECRET_LOOKING}",  # wrong length
        f"k1:{SECRET_LOOKING}*{SECRET_LOOKING}",  # not base64url
        "k1:" + base64.b64encode(b"\xfb" * 32).decode(),  # standard alphabet, not url-safe
        f"{new_key_value('k1')},",  # empty entry
        f"{new_key_value('k1')},{new_key_value('k1')}",  # duplicate kid
        f"bad kid:{base64.urlsafe_b64encode(os.urandom(32)).decode()}",
        f":{base64.urlsafe_b64encode(os.urandom(32)).decode()}",
    ],
    # Named: some values are drawn at random, and a test's id must be the same in every collection of the suite
    # (pytest-xdist's workers each collect it and compare).
    ids=["empty", "blank", "no-colon", "short-key", "not-base64url", "standard-alphabet", "empty-entry",
         "duplicate-kid", "bad-kid", "no-kid"],
)
def test_keyring_rejects_malformed_values_without_echoing_keys(value):
    with pytest.raises(ValueError) as excinfo:
        Keyring.from_env_value(value)
    message = str(excinfo.value)
    for part in value.replace(",", ":").split(":"):
        if len(part) >= 16:
            assert part not in message


def test_keyring_constructor_validates():
    with pytest.raises(ValueError):
        Keyring(current_id="k1", keys={"k1": os.urandom(16)})
    with pytest.raises(ValueError):
        Keyring(current_id="k2", keys={"k1": os.urandom(32)})


# --- field encryption at rest -------------------------------------------------


def test_record_round_trips_and_leaves_out_none_fields():
    cipher = FieldCipher(_keyring("k1"))
    sealed = cipher.encrypt_record(PROFILE, record_id="acct-1")
    assert sealed["kid"] == "k1"
    assert set(sealed["fields"]) == {"name_zh", "name_en", "hkid"}
    assert all(isinstance(v, bytes) for v in sealed["fields"].values())
    assert isinstance(sealed["wrapped_key"], bytes)
    assert cipher.decrypt_record(sealed, record_id="acct-1") == {k: v for k, v in PROFILE.items() if v is not None}


def test_sealed_record_survives_bson_and_hides_plaintext():
    cipher = FieldCipher(_keyring("k1"))
    sealed = cipher.encrypt_record(PROFILE, record_id="acct-1")
    stored = bson.encode({"_id": "acct-1", "pii": sealed})
    for plain in (NAME_ZH, HKID):
        assert plain not in repr(sealed)
        assert plain.encode() not in stored
    restored = bson.decode(stored)["pii"]
    assert cipher.decrypt_record(restored, record_id="acct-1")["name_zh"] == NAME_ZH


def test_every_field_and_record_has_its_own_nonce():
    cipher = FieldCipher(_keyring("k1"))
    sealed = cipher.encrypt_record({"a": "same", "b": "same"}, record_id="r1")
    assert sealed["fields"]["a"] != sealed["fields"]["b"]
    assert sealed["fields"]["a"][:12] != sealed["fields"]["b"][:12]
    again = cipher.encrypt_record({"a": "same", "b": "same"}, record_id="r1")
    assert again["fields"]["a"] != sealed["fields"]["a"]
    assert again["wrapped_key"] != sealed["wrapped_key"]


@pytest.mark.parametrize("index", [0, 12, -1])
def test_flipped_field_ciphertext_is_detected(index):
    cipher = FieldCipher(_keyring("k1"))
    sealed = cipher.encrypt_record(PROFILE, record_id="acct-1")
    sealed["fields"]["hkid"] = _flip(sealed["fields"]["hkid"], index)
    with pytest.raises(DecryptionError):
        cipher.decrypt_record(sealed, record_id="acct-1")


@pytest.mark.parametrize("index", [0, 12, -1])
def test_flipped_wrapped_key_is_detected(index):
    cipher = FieldCipher(_keyring("k1"))
    sealed = cipher.encrypt_record(PROFILE, record_id="acct-1")
    sealed["wrapped_key"] = _flip(sealed["wrapped_key"], index)
    with pytest.raises(DecryptionError):
        cipher.decrypt_record(sealed, record_id="acct-1")


def test_another_record_id_is_refused():
    cipher = FieldCipher(_keyring("k1"))
    sealed = cipher.encrypt_record(PROFILE, record_id="acct-1")
    with pytest.raises(DecryptionError):
        cipher.decrypt_record(sealed, record_id="acct-2")


def test_swapped_field_ciphertexts_are_refused():
    cipher = FieldCipher(_keyring("k1"))
    sealed = cipher.encrypt_record(PROFILE, record_id="acct-1")
    fields = sealed["fields"]
    fields["name_zh"], fields["name_en"] = fields["name_en"], fields["name_zh"]
    with pytest.raises(DecryptionError):
        cipher.decrypt_record(sealed, record_id="acct-1")


def test_field_moved_between_records_is_refused():
    cipher = FieldCipher(_keyring("k1"))
    one = cipher.encrypt_record(PROFILE, record_id="acct-1")
    two = cipher.encrypt_record({**PROFILE, "hkid": "B7654321"}, record_id="acct-2")
    two["fields"]["hkid"] = one["fields"]["hkid"]
    with pytest.raises(DecryptionError):
        cipher.decrypt_record(two, record_id="acct-2")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.pop("kid"),
        lambda s: s.update(kid="nope"),
        lambda s: s.pop("wrapped_key"),
        lambda s: s.update(wrapped_key=b"short"),
        lambda s: s.update(wrapped_key="not bytes"),
        lambda s: s.pop("fields"),
        lambda s: s["fields"].update(hkid=b""),
        lambda s: s["fields"].update(hkid=None),
    ],
)
def test_malformed_records_raise_decryption_error(mangle):
    cipher = FieldCipher(_keyring("k1"))
    sealed = cipher.encrypt_record(PROFILE, record_id="acct-1")
    mangle(sealed)
    with pytest.raises(DecryptionError):
        cipher.decrypt_record(sealed, record_id="acct-1")


def test_separator_in_record_id_or_field_name_is_refused():
    cipher = FieldCipher(_keyring("k1"))
    with pytest.raises(ValueError):
        cipher.encrypt_record({"a": "x"}, record_id="acct|1")
    with pytest.raises(ValueError):
        cipher.encrypt_record({"a|b": "x"}, record_id="acct-1")
    with pytest.raises(ValueError):
        cipher.encrypt_record({"a": "x"}, record_id="")


def test_rewrap_moves_record_to_the_current_key():
    old, new = new_key_value("2025-11"), new_key_value("2026-02")
    sealed = FieldCipher(Keyring.from_env_value(old)).encrypt_record(PROFILE, record_id="acct-1")

    rotated = FieldCipher(Keyring.from_env_value(f"{new},{old}"))
    rewrapped = rotated.rewrap(sealed, record_id="acct-1")
    assert sealed["kid"] == "2025-11" and rewrapped["kid"] == "2026-02"
    assert rewrapped["fields"] == sealed["fields"]
    assert rewrapped["wrapped_key"] != sealed["wrapped_key"]
    assert rotated.decrypt_record(rewrapped, record_id="acct-1")["name_zh"] == NAME_ZH

    only_new = FieldCipher(Keyring.from_env_value(new))
    assert only_new.decrypt_record(rewrapped, record_id="acct-1")["hkid"] == HKID
    with pytest.raises(DecryptionError):
        only_new.decrypt_record(sealed, record_id="acct-1")

    assert rotated.rewrap(rewrapped, record_id="acct-1") is rewrapped


def test_rewrap_refuses_a_tampered_or_foreign_record():
    old, new = new_key_value("old"), new_key_value("new")
    sealed = FieldCipher(Keyring.from_env_value(old)).encrypt_record(PROFILE, record_id="acct-1")
    rotated = FieldCipher(Keyring.from_env_value(f"{new},{old}"))
    with pytest.raises(DecryptionError):
        rotated.rewrap(sealed, record_id="acct-2")
    with pytest.raises(DecryptionError):
        rotated.rewrap({**sealed, "wrapped_key": _flip(sealed["wrapped_key"])}, record_id="acct-1")


def test_a_blob_round_trips_in_the_form_records_already_have():
    cipher = FieldCipher(_keyring("k1"))
    pdf = b"%PDF-1.7\n" + os.urandom(300)
    sealed = cipher.seal_bytes(pdf, record_id="req-1", field="pdf")
    assert cipher.open_bytes(sealed, record_id="req-1", field="pdf") == pdf
    assert base64.b64decode(cipher.decrypt_record(sealed, record_id="req-1")["pdf"]) == pdf
    written_before = cipher.encrypt_record({"body": base64.b64encode(pdf).decode()}, record_id="req-1")
    assert cipher.open_bytes(written_before, record_id="req-1", field="body") == pdf
    with pytest.raises(DecryptionError):
        cipher.open_bytes(sealed, record_id="req-2", field="pdf")
    with pytest.raises(DecryptionError):
        cipher.open_bytes(sealed, record_id="req-1", field="body")


# --- sealing to one recipient -------------------------------------------------


@pytest.fixture(scope="module")
def formfill_key() -> dict:
    return generate_sealing_key()


def test_generated_key_shape(formfill_key):
    assert formfill_key["kty"] == "EC" and formfill_key["crv"] == "P-256"
    assert formfill_key["use"] == "enc" and formfill_key["alg"] == "ECDH-ES+A256KW"
    assert "d" in formfill_key
    assert formfill_key["kid"] == jwcrypto_jwk.JWK(**formfill_key).thumbprint()
    public = public_jwk(formfill_key)
    assert "d" not in public
    assert public["kid"] == formfill_key["kid"]
    assert {k: v for k, v in formfill_key.items() if k != "d"} == public


def test_seal_round_trips_unicode_and_hides_plaintext(formfill_key):
    token = seal(PROFILE, public_jwk(formfill_key))
    assert token.count(".") == 4
    for plain in (NAME_ZH, HKID):
        assert plain not in token
    assert unseal(token, formfill_key) == PROFILE
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ECDH-ES+A256KW" and header["enc"] == "A256GCM"
    assert header["kid"] == formfill_key["kid"] and header["cty"] == "application/json"


def test_sealing_twice_gives_different_tokens(formfill_key):
    public = public_jwk(formfill_key)
    assert seal(PROFILE, public) != seal(PROFILE, public)


def test_unseal_with_another_key_fails(formfill_key):
    token = seal(PROFILE, public_jwk(formfill_key))
    other = generate_sealing_key()
    with pytest.raises(SealError):
        unseal(token, other)
    other_without_kid = {k: v for k, v in other.items() if k != "kid"}
    with pytest.raises(SealError):
        unseal(token, other_without_kid)


@pytest.mark.parametrize("segment", [0, 1, 2, 3, 4])
def test_tampered_token_fails(formfill_key, segment):
    token = seal(PROFILE, public_jwk(formfill_key))
    parts = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[segment] + "=="))
    raw[len(raw) // 2] ^= 0x01
    parts[segment] = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(SealError):
        unseal(".".join(parts), formfill_key)


def test_header_with_epk_on_another_curve_fails(formfill_key):
    token = seal(PROFILE, public_jwk(formfill_key))
    parts = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(parts[0] + "=="))
    p384 = json.loads(jwcrypto_jwk.JWK.generate(kty="EC", crv="P-384").export_public())
    header["epk"] = p384
    parts[0] = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    with pytest.raises(SealError):
        unseal(".".join(parts), formfill_key)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token",
        "a.b.c.d.e",
        "....",
        "e30.AA.AA.AA.AA",  # header {} with no alg
        base64.urlsafe_b64encode(b'{"alg":"ECDH-ES+A256KW","enc":"A256GCM"}').decode().rstrip("=") + ".AA.AA.AA.AA",
        "é.é.é.é.é",
    ],
)
def test_malformed_tokens_fail_with_seal_error(formfill_key, token):
    with pytest.raises(SealError):
        unseal(token, formfill_key)


def test_payload_must_be_a_json_object(formfill_key):
    public = jwcrypto_jwk.JWK(**public_jwk(formfill_key))
    token = _jwcrypto_encrypt(b"[1,2,3]", public, alg="ECDH-ES+A256KW", enc="A256GCM")
    with pytest.raises(SealError):
        unseal(token, formfill_key)


def test_payload_size_limit_is_one_unseal_accepts(formfill_key):
    public = public_jwk(formfill_key)
    filler = "x" * (MAX_PAYLOAD_BYTES - len('{"f":""}'))
    assert unseal(seal({"f": filler}, public), formfill_key) == {"f": filler}
    with pytest.raises(ValueError):
        seal({"f": filler + "x"}, public)


def test_seal_refuses_keys_that_are_not_p256():
    p384 = json.loads(jwcrypto_jwk.JWK.generate(kty="EC", crv="P-384").export_public())
    with pytest.raises(ValueError):
        seal(PROFILE, p384)
    rsa = json.loads(jwcrypto_jwk.JWK.generate(kty="RSA", size=2048).export_public())
    with pytest.raises(ValueError):
        seal(PROFILE, rsa)


# --- interoperability with jwcrypto ------------------------------------------


def _jwcrypto_encrypt(plaintext: bytes, key: jwcrypto_jwk.JWK, **protected) -> str:
    token = jwcrypto_jwe.JWE(plaintext, protected=json.dumps(protected))
    token.add_recipient(key)
    return token.serialize(compact=True)


def _jwcrypto_decrypt(token: str, key: jwcrypto_jwk.JWK) -> bytes:
    parsed = jwcrypto_jwe.JWE()
    parsed.deserialize(token, key)
    return parsed.payload


def test_our_token_decrypts_with_jwcrypto(formfill_key):
    token = seal(PROFILE, public_jwk(formfill_key))
    payload = _jwcrypto_decrypt(token, jwcrypto_jwk.JWK(**formfill_key))
    assert json.loads(payload) == PROFILE
    assert NAME_ZH.encode() in payload


def test_jwcrypto_token_unseals_with_ours(formfill_key):
    public = jwcrypto_jwk.JWK(**public_jwk(formfill_key))
    plaintext = json.dumps(PROFILE, ensure_ascii=False).encode()
    token = _jwcrypto_encrypt(plaintext, public, alg="ECDH-ES+A256KW", enc="A256GCM", kid=formfill_key["kid"])
    assert unseal(token, formfill_key) == PROFILE
    without_kid = _jwcrypto_encrypt(plaintext, public, alg="ECDH-ES+A256KW", enc="A256GCM")
    assert unseal(without_kid, formfill_key) == PROFILE


@pytest.mark.parametrize(
    "protected",
    [
        {"alg": "ECDH-ES+A256KW", "enc": "A128CBC-HS256"},
        {"alg": "ECDH-ES+A256KW", "enc": "A128GCM"},
        {"alg": "ECDH-ES", "enc": "A256GCM"},
        {"alg": "ECDH-ES+A128KW", "enc": "A256GCM"},
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "zip": "DEF"},
    ],
)
def test_other_algorithms_to_our_key_are_refused(formfill_key, protected):
    private = jwcrypto_jwk.JWK(**formfill_key)
    token = _jwcrypto_encrypt(b'{"a":1}', jwcrypto_jwk.JWK(**public_jwk(formfill_key)), **protected)
    # jwcrypto opens it, so the refusal is our policy, not a broken token.
    assert _jwcrypto_decrypt(token, private) == b'{"a":1}'
    with pytest.raises(SealError) as excinfo:
        unseal(token, formfill_key)
    assert isinstance(excinfo.value.__cause__, UnsupportedAlgorithmError)


def test_rsa_oaep_token_is_refused(formfill_key):
    rsa = jwcrypto_jwk.JWK.generate(kty="RSA", size=2048)
    token = _jwcrypto_encrypt(b'{"a":1}', rsa, alg="RSA-OAEP", enc="A256GCM")
    with pytest.raises(SealError) as excinfo:
        unseal(token, formfill_key)
    assert isinstance(excinfo.value.__cause__, UnsupportedAlgorithmError)


def test_the_payload_limit_follows_joserfcs_ciphertext_limit():
    # sealing.py states joserfc's limit rather than importing joserfc at start (docs/operations.md, idle RSS).
    from joserfc import jwe

    from libs.crypto import sealing

    assert sealing.MAX_CIPHERTEXT_LENGTH == jwe.JWERegistry.max_ciphertext_length

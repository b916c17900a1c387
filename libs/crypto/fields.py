"""Field-level envelope encryption at rest (AES-256-GCM): personal data is never stored in the clear.

Each record gets its own random data key; every field is encrypted separately
under it, with the record id and field name as associated data, so a
ciphertext copied into another field or another record fails to decrypt. The
data key is stored wrapped by the keyring's current KEK, which is why rotating
the KEK only means rewrapping 60 bytes per record, never re-encrypting fields.

Sealed form, stored as is (PyMongo writes `bytes` as Binary):
    {"kid": str, "wrapped_key": nonce+ciphertext, "fields": {name: nonce+ciphertext}}

Fields are text; a blob (a PDF, a signature) is one field holding its base64
(`seal_bytes` / `open_bytes`), the form records written before them have too.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keyring import Keyring, UnknownKey

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class DecryptionError(Exception):
    """A sealed record could not be opened: tampered, for another record id, or malformed."""


class FieldCipher:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    @property
    def current_kid(self) -> str:
        """The key id new and re-wrapped records are wrapped under."""
        return self._keyring.current()[0]

    def encrypt_record(self, fields: dict[str, str | None], *, record_id: str) -> dict[str, Any]:
        """Seal the non-None fields of one record; None fields are left out."""
        _check_label(record_id, "record_id")
        data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
        sealed_fields: dict[str, bytes] = {}
        for name, value in fields.items():
            _check_label(name, "field name")
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError(f"field {name!r} must be a str or None")
            sealed_fields[name] = _encrypt(data_key, value.encode(), _field_aad(record_id, name))
        kid, kek = self._keyring.current()
        return {
            "kid": kid,
            "wrapped_key": _encrypt(kek, data_key, _dek_aad(record_id)),
            "fields": sealed_fields,
        }

    def decrypt_record(self, sealed: dict[str, Any], *, record_id: str) -> dict[str, str]:
        _check_label(record_id, "record_id")
        data_key = self._unwrap(sealed, record_id)
        fields = sealed.get("fields")
        if not isinstance(fields, dict):
            raise DecryptionError("sealed record has no fields mapping")
        opened: dict[str, str] = {}
        for name, blob in fields.items():
            plaintext = _decrypt(data_key, blob, _field_aad(record_id, name))
            try:
                opened[name] = plaintext.decode()
            except UnicodeDecodeError:  # authenticated, so only a bug could get here
                raise DecryptionError(f"field {name!r} is not UTF-8") from None
        return opened

    def seal_bytes(self, blob: bytes, *, record_id: str, field: str) -> dict[str, Any]:
        """Seal a record whose one field is a blob."""
        return self.encrypt_record({field: base64.b64encode(blob).decode("ascii")}, record_id=record_id)

    def open_bytes(self, sealed: dict[str, Any], *, record_id: str, field: str) -> bytes:
        """The blob `seal_bytes` sealed in `field`."""
        opened = self.decrypt_record(sealed, record_id=record_id)
        if field not in opened:
            raise DecryptionError(f"sealed record has no field {field!r}")
        try:
            return base64.b64decode(opened[field], validate=True)
        except binascii.Error:  # authenticated, so only a bug could get here
            raise DecryptionError(f"field {field!r} is not base64") from None

    def rewrap(self, sealed: dict[str, Any], *, record_id: str) -> dict[str, Any]:
        """Move the data key under the current KEK; the field ciphertexts stay as they are."""
        _check_label(record_id, "record_id")
        kid, kek = self._keyring.current()
        if sealed.get("kid") == kid:
            return sealed
        data_key = self._unwrap(sealed, record_id)
        fields = sealed.get("fields")
        if not isinstance(fields, dict):
            raise DecryptionError("sealed record has no fields mapping")
        return {
            **sealed,
            "kid": kid,
            "wrapped_key": _encrypt(kek, data_key, _dek_aad(record_id)),
            "fields": dict(fields),
        }

    def _unwrap(self, sealed: dict[str, Any], record_id: str) -> bytes:
        if not isinstance(sealed, dict) or not isinstance(sealed.get("kid"), str):
            raise DecryptionError("sealed record has no key id")
        try:
            kek = self._keyring.get(sealed["kid"])
        except UnknownKey:
            raise DecryptionError(f"sealed under key id {sealed['kid']!r}, which the keyring lacks") from None
        data_key = _decrypt(kek, sealed.get("wrapped_key"), _dek_aad(record_id))
        if len(data_key) != DATA_KEY_BYTES:  # authenticated, so only a bug could get here
            raise DecryptionError("unwrapped data key has the wrong length")
        return data_key


def _field_aad(record_id: str, name: str) -> bytes:
    return f"{record_id}|{name}".encode()


def _dek_aad(record_id: str) -> bytes:
    return f"{record_id}|dek".encode()


def _check_label(value: str, what: str) -> None:
    # "|" separates record id and field name in the associated data; allowing it
    # would make ("a|b", "c") and ("a", "b|c") the same context.
    if not isinstance(value, str) or not value or "|" in value:
        raise ValueError(f"{what} must be a non-empty string without '|'")


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: Any, aad: bytes) -> bytes:
    # PyMongo may hand back bson.Binary, a bytes subclass; anything else is malformed.
    if not isinstance(blob, bytes) or len(blob) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("sealed value is missing or too short")
    blob = bytes(blob)
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError("sealed value failed authentication (tampered, or another record or field)") from None

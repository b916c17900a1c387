"""Keyed hashing, field-level encryption at rest, and sealing to one recipient."""

from .fields import DecryptionError, FieldCipher
from .keyed_hash import keyed_hash, normalise_hkid
from .keyring import Keyring, UnknownKey, new_key_value
from .sealing import SealError, generate_sealing_key, public_jwk, seal, seal_jwt, unseal

__all__ = [
    "DecryptionError",
    "FieldCipher",
    "Keyring",
    "SealError",
    "UnknownKey",
    "generate_sealing_key",
    "keyed_hash",
    "new_key_value",
    "normalise_hkid",
    "public_jwk",
    "seal",
    "seal_jwt",
    "unseal",
]

"""The HSM behind PKCS#11 (SoftHSM2 locally, a real HSM in production): key generation and raw signing.

Every private key is generated inside the token as sensitive and
non-extractable: nothing here (nor anything else) can read it back. Keys are
found by label. python-pkcs11 is blocking, so calls run in a worker thread,
one at a time: every use of the session (a search, an attribute read, a
signature, a key generated or destroyed) holds `_session_lock`. python-pkcs11
locks only its multi-part operations, and SoftHSM2 crashed the whole signing
process (a general protection fault in libstdc++, no Python traceback) about
once in ten benchmark runs while concurrent timestamp requests signed and
looked their key up at the same time. A raw signature takes ~0.05 ms: one at a
time costs nothing measurable.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time

import pkcs11
from asn1crypto import keys
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature, encode_named_curve_parameters
from prometheus_client import Histogram

HSM_SECONDS = Histogram(
    "harbour_signing_hsm_operation_seconds",
    "Latency of PKCS#11 operations on the signing HSM.",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


class HSM:
    """One logged-in session on the token named by label (or slot), opened at start-up."""

    def __init__(self, module_path: str, pin: str, *, token_label: str | None = None, slot: int | None = None) -> None:
        lib = pkcs11.lib(module_path)
        if slot is not None:
            token = next(s for s in lib.get_slots(token_present=True) if s.slot_id == slot).get_token()
        else:
            token = lib.get_token(token_label=token_label)
        self.token_label = token.label
        self.session = token.open(rw=True, user_pin=pin)
        self._keys: dict[str, pkcs11.PrivateKey] = {}
        self._session_lock = threading.RLock()

    def close(self) -> None:
        self.session.close()

    # -- blocking primitives (run in a thread) ------------------------------

    def _private_key(self, label: str) -> pkcs11.PrivateKey:
        with self._session_lock:
            key = self._keys.get(label)
            if key is None:
                key = self._keys[label] = self.session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC,
                                                               label=label)
            return key

    def generate_ec_key_sync(self, label: str) -> keys.PublicKeyInfo:
        with self._session_lock:
            return self._generate_ec_key(label)

    def _generate_ec_key(self, label: str) -> keys.PublicKeyInfo:
        started = time.perf_counter()
        params = self.session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        public, _private = params.generate_keypair(
            store=True, label=label,
            # The key is born in the token and can never leave it, even wrapped.
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                              Attribute.PRIVATE: True, Attribute.TOKEN: True},
            public_template={Attribute.VERIFY: True, Attribute.TOKEN: True},
        )
        HSM_SECONDS.labels("generate_key").observe(time.perf_counter() - started)
        return keys.PublicKeyInfo.load(encode_ec_public_key(public))

    def sign_sync(self, label: str, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        """ECDSA over `data` hashed here (only the digest goes to the token); DER-encoded signature."""
        digest = HASHES[digest_algorithm](data).digest()
        with self._session_lock:
            key = self._private_key(label)
            started = time.perf_counter()
            raw = key.sign(digest, mechanism=Mechanism.ECDSA)  # r || s
            HSM_SECONDS.labels("sign").observe(time.perf_counter() - started)
        return encode_ecdsa_signature(raw)

    def private_key_value_sync(self, label: str) -> bytes:
        """Ask the token for the private key's value: a sound token refuses (AttributeSensitive)."""
        with self._session_lock:
            return bytes(self._private_key(label)[Attribute.VALUE])

    def key_flags_sync(self, label: str) -> dict[str, bool]:
        with self._session_lock:
            key = self._private_key(label)
            return {"sensitive": bool(key[Attribute.SENSITIVE]), "extractable": bool(key[Attribute.EXTRACTABLE]),
                    "always_sensitive": bool(key[Attribute.ALWAYS_SENSITIVE]),
                    "never_extractable": bool(key[Attribute.NEVER_EXTRACTABLE])}

    def has_key_sync(self, label: str) -> bool:
        with self._session_lock:
            return any(True for _ in self.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}))

    def destroy_key_sync(self, label: str) -> int:
        """Destroy the key pair under `label` (an account closed): how many objects went; none left is no error."""
        with self._session_lock:
            self._keys.pop(label, None)
            found = list(self.session.get_objects({Attribute.LABEL: label}))
            for obj in found:
                obj.destroy()
            return len(found)

    # -- async wrappers ------------------------------------------------------

    async def generate_ec_key(self, label: str) -> keys.PublicKeyInfo:
        return await asyncio.to_thread(self.generate_ec_key_sync, label)

    async def sign(self, label: str, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        return await asyncio.to_thread(self.sign_sync, label, data, digest_algorithm)

    async def has_key(self, label: str) -> bool:
        return await asyncio.to_thread(self.has_key_sync, label)

    async def destroy_key(self, label: str) -> int:
        return await asyncio.to_thread(self.destroy_key_sync, label)

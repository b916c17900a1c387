"""The app's profile file: where the platform is, who the citizen is, and the device's private key.

The device key is kept encrypted under the citizen's PIN or passphrase
(`device_key_sealed`): a key derived with scrypt (memory-hard: N=2^15, r=8,
p=1, 32 MiB and 0.39 s per try on the dev machine, a fresh 16-byte salt per sealing) opens
an AES-256-GCM box holding the key's PKCS#8 DER. The file then holds no
usable key: without the PIN nothing opens, and a wrong PIN fails the GCM tag
(`WrongPin`) rather than giving a wrong key. The PIN is asked each time the
key must sign (a decision, a device token) and never stored.

A profile without a PIN (`device_key_pem`, the key in the clear: profiles
made before PINs, and the library's default for scripts and tests) keeps
working; the device is registered at auth as not PIN-protected, so its logins
never claim a PIN (`amr` ["swk"]). `set_pin` seals such a key in place; auth
keeps counting that device as registered without a PIN (docs/security.md).

The file is written with mode 0600, atomically (a crash never leaves half a
key), and refused when others can read it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MIN_PIN_LENGTH = 6
# scrypt's cost: 128·N·r bytes of memory (32 MiB) per try (0.39 s measured on the shared dev machine).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SEAL_ALG = "scrypt+A256GCM"
# Bound into every box: a box cut from another kind of file does not open as a device key.
SEAL_AAD = b"harbour-id device key v1"


class ProfileError(RuntimeError):
    pass


class PinRequired(ProfileError):
    """The device key is sealed under a PIN and none was given."""


class WrongPin(ProfileError):
    """The PIN does not open the device key."""


def check_new_pin(pin: str) -> None:
    if len(pin) < MIN_PIN_LENGTH:
        raise ProfileError(f"a PIN or passphrase has at least {MIN_PIN_LENGTH} characters")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _kek(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(pin.encode())


def seal_key(key: ec.EllipticCurvePrivateKey, pin: str) -> dict[str, Any]:
    """The key's PKCS#8 DER in an AES-256-GCM box under a key scrypt derives from the PIN (fresh salt and nonce)."""
    check_new_pin(pin)
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    box = AESGCM(_kek(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, der, SEAL_AAD)
    return {"alg": SEAL_ALG, "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt), "nonce": _b64(nonce),
            "ciphertext": _b64(box)}


def open_key(sealed: dict[str, Any], pin: str) -> ec.EllipticCurvePrivateKey:
    """The key in the box; WrongPin if the PIN does not open it."""
    if sealed.get("alg") != SEAL_ALG:
        raise ProfileError(f"the device key is sealed with {sealed.get('alg')!r}, which this app does not know")
    try:
        kek = _kek(pin, _unb64(sealed["salt"]), int(sealed["n"]), int(sealed["r"]), int(sealed["p"]))
        der = AESGCM(kek).decrypt(_unb64(sealed["nonce"]), _unb64(sealed["ciphertext"]), SEAL_AAD)
    except InvalidTag:
        raise WrongPin("wrong PIN: the device key stays locked") from None
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@dataclass
class Profile:
    gateway_url: str
    account_id: str | None = None
    device_id: str | None = None
    device_name: str = "phone"
    # The device key in the clear (a profile without a PIN), or None when sealed or not made yet.
    device_key_pem: str | None = None
    # A new phone waiting to be added from one already bound (CitizenApp.start_pairing): its private pairing id.
    pairing_id: str | None = None
    # The device key sealed under the PIN (seal_key), or None.
    device_key_sealed: dict[str, Any] | None = None

    @property
    def pin_protected(self) -> bool:
        return self.device_key_sealed is not None

    def device_key(self, pin: str | None = None) -> ec.EllipticCurvePrivateKey:
        """The device key: opened with `pin` when sealed (PinRequired without one, WrongPin with a wrong one)."""
        if self.device_key_sealed is not None:
            if not pin:
                raise PinRequired("the device key is protected by a PIN: give the PIN to unlock it")
            return open_key(self.device_key_sealed, pin)
        if not self.device_key_pem:
            raise ProfileError("this profile has no device yet: run `activate` first")
        key = serialization.load_pem_private_key(self.device_key_pem.encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def set_device_key(self, key: ec.EllipticCurvePrivateKey, pin: str | None) -> None:
        """Keep a new device key: sealed under `pin`, or (no PIN) in the clear."""
        if pin:
            self.device_key_sealed, self.device_key_pem = seal_key(key, pin), None
        else:
            self.device_key_sealed, self.device_key_pem = None, self.pem_of(key)

    def set_pin(self, new_pin: str, old_pin: str | None = None) -> None:
        """Seal the key under `new_pin` (a plain profile's migration, or a PIN change with `old_pin`)."""
        self.set_device_key(self.device_key(old_pin), new_pin)

    @staticmethod
    def pem_of(key: ec.EllipticCurvePrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @classmethod
    def load(cls, path: Path) -> "Profile":
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise ProfileError(f"no profile at {path}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ProfileError(f"{path} is readable by others: chmod 600 it")
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".profile-")  # created 0600
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(self), handle, indent=2)
            os.chmod(temp, 0o600)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

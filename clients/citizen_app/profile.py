"""The app's profile file: where the platform is, who the citizen is, and the device's private key.

The file holds a private key, so it is written with mode 0600, atomically
(a crash never leaves half a key), and refused when others can read it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


class ProfileError(RuntimeError):
    pass


@dataclass
class Profile:
    gateway_url: str
    account_id: str | None = None
    device_id: str | None = None
    device_name: str = "phone"
    device_key_pem: str | None = None
    # A new phone waiting to be added from one already bound (CitizenApp.start_pairing): its private pairing id.
    pairing_id: str | None = None

    def device_key(self) -> ec.EllipticCurvePrivateKey:
        if not self.device_key_pem:
            raise ProfileError("this profile has no device yet: run `activate` first")
        key = serialization.load_pem_private_key(self.device_key_pem.encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

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

"""The dev stack's HSM: a SoftHSM2 token of its own under the stack's folder, made once.

`SOFTHSM2_CONF` points SoftHSM2 at `<dev_dir>/softhsm/softhsm2.conf`, whose
token directory is beside it, so every stack (and every test run, which has
its own folder) has its own token. The label, SO PIN and user PIN are dev
secrets (secrets.json). Production sets HARBOUR_SIGNING_PKCS11_MODULE to the
HSM vendor's module and never runs this.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Debian's softhsm2 package (the path differs between releases and architectures).
MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)


class SoftHSMMissing(RuntimeError):
    """softhsm2 is not installed (`make up` installs it: the .dev/.softhsm target)."""


def module_path() -> str:
    for candidate in MODULE_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise SoftHSMMissing("SoftHSM2's PKCS#11 module is not installed: run `make up` (or apt-get install softhsm2)")


def config_path(dev_dir: Path) -> Path:
    return dev_dir / "softhsm" / "softhsm2.conf"


def ensure_token(dev_dir: Path, *, label: str, so_pin: str, pin: str) -> Path:
    """Write the folder's SoftHSM2 configuration and initialise its token once; the configuration's path."""
    conf = config_path(dev_dir)
    tokens = conf.parent / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n")
    util = shutil.which("softhsm2-util")
    if util is None:
        raise SoftHSMMissing("softhsm2-util is not installed: run `make up` (or apt-get install softhsm2)")
    env = {"SOFTHSM2_CONF": str(conf), "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([util, "--show-slots"], env=env, capture_output=True, text=True, check=True).stdout
    labels = {line.split(":", 1)[1].strip() for line in listed.splitlines() if line.strip().startswith("Label:")}
    if label not in labels:
        subprocess.run([util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
                       env=env, capture_output=True, text=True, check=True)
    return conf

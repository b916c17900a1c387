"""The dev stack's secrets: generated once per `.dev/` folder, kept in secrets.json (mode 0600).

Production takes the same variables from Kubernetes Secrets; nothing here is
used there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from libs import base64url
from libs.crypto import generate_sealing_key, new_key_value, public_jwk


def _generate() -> dict[str, str]:
    sealing = generate_sealing_key()
    auth_sealing = generate_sealing_key()
    notify_sealing = generate_sealing_key()
    return {
        "HARBOUR_AUTH_HASH_KEY": base64url.encode(os.urandom(32)),
        "HARBOUR_AUTH_KEK": new_key_value("dev-1"),
        "HARBOUR_FORMFILL_KEK": new_key_value("vault-1"),
        "HARBOUR_NOTIFY_KEK": new_key_value("notify-1"),
        "HARBOUR_FORMFILL_SEALING_KEY": json.dumps(sealing),
        "HARBOUR_FORMFILL_SEALING_PUBLIC_JWK": json.dumps(public_jwk(sealing)),
        # auth's pair: formfill and signing seal approval prompts' free text to the public half.
        "HARBOUR_AUTH_SEALING_KEY": json.dumps(auth_sealing),
        "HARBOUR_AUTH_SEALING_PUBLIC_JWK": json.dumps(public_jwk(auth_sealing)),
        # notify's pair: auth seals a changed phone or e-mail and its one-time code to the public half.
        "HARBOUR_NOTIFY_SEALING_KEY": json.dumps(notify_sealing),
        "HARBOUR_NOTIFY_SEALING_PUBLIC_JWK": json.dumps(public_jwk(notify_sealing)),
        "HARBOUR_ADMIN_TOKEN": base64url.encode(os.urandom(32)),
        # signing: results at rest, and the folder's own SoftHSM2 token (libs/devstack/softhsm.py).
        "HARBOUR_SIGNING_KEK": new_key_value("signing-1"),
        "HARBOUR_SIGNING_TOKEN_LABEL": f"harbour-dev-{os.urandom(4).hex()}",
        "HARBOUR_SIGNING_SO_PIN": os.urandom(8).hex(),
        "HARBOUR_SIGNING_HSM_PIN": os.urandom(8).hex(),
    }


def dev_secrets(dev_dir: Path) -> dict[str, str]:
    """The folder's secrets; ones added to the platform since the folder was made are generated and kept."""
    path = dev_dir / "secrets.json"
    existing = json.loads(path.read_text()) if path.exists() else {}
    generated = _generate()
    if "HARBOUR_FORMFILL_SEALING_KEY" in existing:
        # The sealing key pair belongs together: never mix an old half with a new one.
        generated.pop("HARBOUR_FORMFILL_SEALING_KEY")
        generated.pop("HARBOUR_FORMFILL_SEALING_PUBLIC_JWK")
    if "HARBOUR_AUTH_SEALING_KEY" in existing:
        generated.pop("HARBOUR_AUTH_SEALING_KEY")
        generated.pop("HARBOUR_AUTH_SEALING_PUBLIC_JWK")
    if "HARBOUR_NOTIFY_SEALING_KEY" in existing:
        generated.pop("HARBOUR_NOTIFY_SEALING_KEY")
        generated.pop("HARBOUR_NOTIFY_SEALING_PUBLIC_JWK")
    secrets = {**generated, **existing}
    if secrets != existing:
        dev_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(secrets, handle, indent=2)
    return secrets

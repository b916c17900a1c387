"""`python libs/devstack/token_keys.py MODULE`: the labels of the private keys in one PKCS#11 token, as JSON.

The token is named by HARBOUR_SIGNING_TOKEN_LABEL and opened with
HARBOUR_SIGNING_HSM_PIN (read-only session); SOFTHSM2_CONF says which token
directory SoftHSM2 reads. backup.py runs it in a process of its own, because
SoftHSM2 reads SOFTHSM2_CONF once, when the module is loaded: that is how a
backup's or a restored copy's token is opened without touching the stack's.
It imports nothing of the project, so it starts in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys

import pkcs11
from pkcs11 import Attribute, ObjectClass


def private_key_labels(module: str, token_label: str, pin: str) -> list[str]:
    token = pkcs11.lib(module).get_token(token_label=token_label)
    with token.open(user_pin=pin) as session:
        return sorted(key[Attribute.LABEL] for key in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))


def main() -> int:
    module = sys.argv[1]
    labels = private_key_labels(module, os.environ["HARBOUR_SIGNING_TOKEN_LABEL"], os.environ["HARBOUR_SIGNING_HSM_PIN"])
    json.dump(labels, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

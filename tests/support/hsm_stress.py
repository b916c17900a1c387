"""Many threads on one HSM session at once, as signing's are under concurrent timestamps and signatures.

`python -m tests.support.hsm_stress FOLDER SECONDS`: a SoftHSM2 token in FOLDER, four keys, eight threads signing,
looking keys up again, reading their flags and asking for them, for SECONDS; prints "survived" if the process
did. Run in a process of its own: what it guards against is a native crash (tests/integration/test_hsm_threads.py).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from libs.devstack import softhsm


def main(folder: Path, seconds: float) -> None:
    os.environ["SOFTHSM2_CONF"] = str(softhsm.ensure_token(folder, label="stress", so_pin="1234", pin="5678"))
    from services.signing.hsm import HSM  # after SOFTHSM2_CONF: the library reads it when loaded

    hsm = HSM(softhsm.module_path(), "5678", token_label="stress")
    labels = [f"key-{i}" for i in range(4)]
    for label in labels:
        if not hsm.has_key_sync(label):
            hsm.generate_ec_key_sync(label)
    until = time.monotonic() + seconds

    def work(n: int) -> None:
        i = 0
        while time.monotonic() < until:
            label = labels[(n + i) % len(labels)]
            if i % 7 == 0:
                hsm._keys.pop(label, None)  # looked up on the token again, as after a restart
            hsm.sign_sync(label, b"data %d" % i)
            if i % 5 == 0:
                hsm.has_key_sync(label)
                hsm.key_flags_sync(label)
            i += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hsm.close()
    print("survived")


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))

"""signing's HSM used from many threads at once survives (services/signing/hsm.py: one session use at a time).

Timestamp requests sign in worker threads while signatures look their key up: with python-pkcs11 locking only its
multi-part operations, SoftHSM2 crashed the signing process (a general protection fault in libstdc++, no Python
traceback) about once in ten benchmark runs. The same hammering in a process of its own ended in a segmentation
fault or a hang three times in three before the lock; it must now finish.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from libs.devstack import softhsm

pytestmark = pytest.mark.integration


def test_one_session_used_from_many_threads_does_not_crash_the_process(tmp_path):
    softhsm.module_path()  # SoftHSM2 is installed (make test installs it)
    ran = subprocess.run([sys.executable, "-m", "tests.support.hsm_stress", str(tmp_path), "2"],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert ran.returncode == 0 and "survived" in ran.stdout, (ran.returncode, ran.stdout, ran.stderr[-2000:])

"""What a service process leaves out when it starts: what other libraries load only because it is there.

- structlog imports `rich` (and with it `pygments`) for its console renderer's tracebacks, and `greenlet` for its
  deprecated greenlet-local context, whenever they are installed — as they are in the development environment,
  brought by the test tools (schemathesis, playwright). A service renders JSON and never uses either; loading them
  cost each process about 5 MB of its memory.
- aiohttp builds its verified TLS context when it is imported, and OpenSSL's default verify paths parse the whole
  CA bundle file into it (Debian's 144 certificates: 1.5-2 MB of every process), for the few outbound https calls a
  service makes (agencies' callbacks, OCSP, timestamps). The hashed directory beside it holds the same certificates
  and OpenSSL reads one from it only when a chain needs it. So when the bundle is the system's own (not one an
  operator chose) and the directory holds at least as many certificates, the bundle is left out and the directory
  alone is used: the same trust anchors, read on demand.

A service's entry point calls `start_lean()` before anything else is imported; tests and tools that import the
services keep whatever they need.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

NOT_FOR_SERVICES = ("rich", "greenlet")
# `openssl rehash` / update-ca-certificates name each certificate by its subject's hash: 8 hex digits, a dot, a number.
HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def start_lean() -> None:
    leave_out_optional_extras()
    ca_certificates_on_demand()


def leave_out_optional_extras() -> None:
    """Make `import rich` / `import greenlet` fail in this process, as if they were not installed."""
    for name in NOT_FOR_SERVICES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not available" marker


def ca_certificates_on_demand(environ: MutableMapping[str, str] = os.environ, verify_paths: Any = None) -> bool:
    """Point OpenSSL's CA file at nothing when the system's hashed directory can stand in for it; True if it did.

    `verify_paths`: `ssl.get_default_verify_paths()` (OpenSSL's compiled-in defaults and their variables' names).
    """
    if verify_paths is None:
        import ssl  # aiohttp loads it anyway

        verify_paths = ssl.get_default_verify_paths()
    bundle = environ.get(verify_paths.openssl_cafile_env) or verify_paths.openssl_cafile
    if not _same_file(bundle, verify_paths.openssl_cafile):
        return False  # a bundle an operator chose (or none): theirs as it is
    directories = (environ.get(verify_paths.openssl_capath_env) or verify_paths.openssl_capath).split(os.pathsep)
    if sum(_hashed_certificates(d) for d in directories) < _certificates_in(bundle):
        return False  # the directory is not the bundle's mirror: keep the bundle
    environ[verify_paths.openssl_cafile_env] = os.devnull
    return True


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _hashed_certificates(directory: str) -> int:
    try:
        return sum(1 for name in os.listdir(directory) if HASHED_NAME.fullmatch(name))
    except OSError:
        return 0


def _certificates_in(bundle: str) -> int:
    with open(bundle, "rb") as pem:
        return sum(1 for line in pem if line.startswith(b"-----BEGIN CERTIFICATE-----"))

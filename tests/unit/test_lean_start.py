"""What a service process leaves out of its memory until it needs it (docs/operations.md, idle RSS).

Each probe imports a process's module the way its entry point does (lean start first) in a fresh interpreter and
lists which of the heavy optional packages are loaded: structlog's extras never; pymongo not in the gateway; segno
never (the login page draws its QR code itself); Pillow (auth's selfies), Jinja (auth's pages, the gateway's API reference page, notify's
templates), joserfc (sealing to a recipient), pyHanko (signing's signatures, verification and timestamps), py_webauthn
and cbor2 with what they bring (pyOpenSSL, pyasn1: auth's passkeys) and the OpenTelemetry SDK (tracing off) only on
first use. The paths that load them are tested where they are used (test_oidc_pages.py, test_openapi.py,
test_notify_rules.py, test_crypto.py, test_passkeys.py, tests/service/auth/test_passkey*.py, tests/service/signing).

Signing's sandbox forkserver runs none of our entry points: it imports its preload list, lean start first
(libs/lean_preload.py), and with it only the parsers, not the HSM, the authority or the database driver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORKSERVER_LEAVES_OUT = ("aiokafka", "libs.service", "libs.store", "services.signing.signatures", "pkcs11")
HEAVY = ("rich", "pygments", "greenlet", "pymongo", "PIL", "segno", "jinja2", "joserfc", "pyhanko", "pyhanko_certvalidator",
         "webauthn", "cbor2", "OpenSSL", "pyasn1", "pyasn1_modules", "opentelemetry.sdk", "opentelemetry.exporter")
PROBE = """
import json, sys
from libs.lean_start import start_lean
start_lean()
import {module}
print(json.dumps(sorted(name for name in {heavy!r} if sys.modules.get(name) is not None)))
"""


def loaded_by(module: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # tracing off, as by default
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_gateway_loads_neither_the_database_driver_nor_jinja_nor_structlogs_extras():
    assert loaded_by("services.gateway.app") == []


def test_auth_loads_pillow_jinja_and_py_webauthn_only_when_it_needs_them():
    assert loaded_by("services.auth.app") == ["pymongo"]


def test_signing_loads_pyhanko_only_when_it_signs_or_verifies():
    assert loaded_by("services.signing.app") == ["pymongo"]


def test_notify_and_its_dispatcher_load_jinja_only_for_a_template():
    assert loaded_by("services.notify.app") == ["pymongo"]
    assert loaded_by("services.notify.dispatcher") == ["pymongo"]


def test_formfill_loads_no_optional_package():
    assert loaded_by("services.formfill.app") == ["pymongo"]


def test_signings_forkserver_starts_lean_and_loads_only_the_parsers():
    from services.signing.app import PARSERS
    from services.signing.sandbox import LEAN_PRELOAD

    preload = [LEAN_PRELOAD, *PARSERS]
    probe = f"import json, sys\nfor m in {preload!r}: __import__(m)\n" \
            f"print(json.dumps(sorted(n for n in {HEAVY + FORKSERVER_LEAVES_OUT!r} if sys.modules.get(n) is not None)))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["pyhanko", "pyhanko_certvalidator"]


def test_a_process_with_no_exporter_runs_without_the_sdks_tracer():
    probe = ("import json, sys\nfrom libs.service.tracing import configure_tracing\nconfigure_tracing('auth', {})\n"
             "print(json.dumps(sorted(n for n in ('opentelemetry.sdk.trace', 'opentelemetry.exporter') if n in sys.modules)))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_an_imported_event_name_still_resolves():
    from libs.events import OUTBOX_RELAY, CloudEvent, install_consumer  # noqa: F401  (lazy exports, PEP 562)
    import libs.events

    assert libs.events.Topic.__module__ == "libs.events.topics"


def test_a_sandbox_job_named_by_reference_runs_the_function_it_names():
    from services.signing.reports import INSPECT_UPLOAD, InvalidPdf

    assert INSPECT_UPLOAD.__name__ == "inspect_upload"  # the sandbox's metrics label
    try:
        INSPECT_UPLOAD(b"not a pdf")
    except InvalidPdf as refused:
        assert "not a PDF" in str(refused)
    else:
        raise AssertionError("inspect_upload accepted something that is not a PDF")


def test_a_database_client_keeps_no_source_files_read_for_its_stack():
    """PyMongo keeps the stack that made a client (for its unclosed-client warning): the text stays, the source files
    read whole into linecache to write it do not (libs/store/client.py)."""
    import asyncio
    import linecache

    from libs.store.client import create_client

    async def made() -> tuple[set[str], str]:
        before = set(linecache.cache)
        client = create_client("mongodb://127.0.0.1:9", server_selection_timeout_ms=100)
        try:
            return set(linecache.cache) - before, client._topology_settings._stack
        finally:
            await client.close()

    read, stack = asyncio.run(made())
    assert read == set()
    assert "made()" in stack or "create_client" in stack  # the stack's text, source lines included, is still kept

"""The services run under `python -OO` (PYTHONOPTIMIZE=2: no docstrings in memory; docs/operations.md, idle RSS), and
their OpenAPI documents are built there: a model's or refusal's description must not come from a docstring, which
-OO drops, but from `__doc__ = "..."` in the class body (libs/service/openapi.py). Each service's document built under -OO must
be the one built here, description for description.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from libs.service.jsoncodec import dumps
from libs.service.openapi import document

REPO = Path(__file__).resolve().parents[2]
# What each service's app passes to install_openapi_route.
SERVICES = {
    "auth": ["services.auth.openapi"],
    "formfill": ["services.formfill.api"],
    "notify": ["services.notify.api"],
    "signing": ["services.signing.api", "services.signing.ledger.service"],
}
BUILD = """
import importlib, sys
from libs.service.jsoncodec import dumps
from libs.service.openapi import document
operations = [op for name in sys.argv[1:] for op in importlib.import_module(name).OPERATIONS]
sys.stdout.write(dumps(document(operations, title="t", version="1")))
"""


def _built(modules: list[str], *flags: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"}
    out = subprocess.run([sys.executable, *flags, "-c", BUILD, *modules], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _descriptions(doc, path: str = "") -> dict[str, str]:
    """Every `description` in the document, by where it is."""
    found = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "description" and isinstance(value, str):
                found[path] = value
            found |= _descriptions(value, f"{path}/{key}")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found |= _descriptions(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_document_built_under_dash_oo_keeps_every_description(service):
    here = json.loads(dumps(document([op for name in SERVICES[service] for op in importlib.import_module(name).OPERATIONS],
                                     title="t", version="1")))
    optimized = _built(SERVICES[service], "-OO")
    kept = _descriptions(optimized)
    lost = {where: text for where, text in _descriptions(here).items() if kept.get(where) != text}
    assert lost == {}
    assert optimized == here


def test_dash_oo_does_drop_a_docstring_here():
    """What the test above guards against: under -OO a docstring is gone, `__doc__ = ...` stays."""
    probe = ('class A:\n    """gone"""\nclass B:\n    __doc__ = """kept"""\nimport sys\n'
             'sys.stdout.write(repr((A.__doc__, B.__doc__, sys.flags.optimize)))')
    out = subprocess.run([sys.executable, "-OO", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout == "(None, 'kept', 2)"

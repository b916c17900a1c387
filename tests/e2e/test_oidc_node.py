"""Login with Harbour ID driven by Node's openid-client (v6), approved on the phone by the reference app.

The Node side is tests/interop/node/login.mjs; its dependencies are pinned by the package-lock.json
next to it and installed by `make test` (or here, when node_modules is missing). Node and npm are the
machine's own, or those `make test` unpacked to .dev/bin from a pinned PyPI wheel when the machine had no
Node.js 20+ with npm (Makefile, .dev/.node). A machine without either fails this test: the
interoperability claim is not to be skipped silently.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests

from ..support.citizens import enrolled_app
from ..support.node import tool
from ..support.oidc import REDIRECT, app_link_of, register
from ..support.operator import create_kiosk

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with openid-client installed from the lock file."""
    node = tool("node")
    if not (NODE_DIR / "node_modules").is_dir():
        npm = tool("npm")
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    return node


def login_mjs(node: str, *args: str) -> dict:
    result = subprocess.run([node, "login.mjs", *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"node login.mjs {args[0]} exited {result.returncode}:\n{result.stderr}"
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{result.stdout}\nstderr:\n{result.stderr}"
    return json.loads(lines[0])


async def test_openid_client_code_flow_with_pkce_approved_on_the_phone(platform, node, tmp_path):
    citizen = await enrolled_app(platform, create_kiosk(platform), tmp_path)
    rp = register(platform, scope="openid offline_access")
    issuer, client_id, secret = platform.gateway, rp["client_id"], rp["client_secret"]

    started = login_mjs(node, "start", issuer, client_id, secret, REDIRECT)
    assert started["url"].startswith(platform.gateway + "/"), started
    page = requests.get(started["url"], timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")

    outcome = await citizen.open_link(app_link_of(page.text))
    callback = outcome["redirect_to"]
    assert callback.startswith(REDIRECT + "?"), callback

    finished = login_mjs(node, "finish", issuer, client_id, secret, callback,
                         started["code_verifier"], started["state"], started["nonce"])
    claims = finished["id_token_claims"]
    assert finished["sub"] == claims["sub"] == finished["userinfo"]["sub"]
    assert claims["iss"] == platform.gateway
    assert claims["aud"] in (client_id, [client_id])
    assert claims["nonce"] == started["nonce"]
    assert claims.get("acr"), claims
    assert finished["refreshed"] is True

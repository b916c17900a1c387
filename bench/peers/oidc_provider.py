"""node-oidc-provider as a peer: installed with `npm ci` from bench/peers/oidc-provider/package-lock.json (pinned
9.13.3, and the `mongodb` driver for its MongoDB adapter), run as one process with NODE_ENV=production.

Node and npm: `.dev/bin/` (what `make .dev/.node` provides when the machine has no Node 20+), else the machine's;
when neither is there, `make .dev/.node` is run first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from libs.devstack import processes

from . import PeerProcess

HERE = Path(__file__).resolve().parent / "oidc-provider"
REPO_ROOT = HERE.parents[2]
STAMP = HERE / "node_modules" / ".installed"
VERSION = "9.13.3"

CC_CLIENT = ("bench-cc", "bench-cc-secret")  # client_credentials, scope "api"
CODE_CLIENT = ("bench-code", "bench-code-secret")  # code + PKCE S256
REDIRECT_URI = "http://127.0.0.1:8765/callback"


def _path() -> str:
    return f"{REPO_ROOT / '.dev' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"


def node() -> str:
    return shutil.which("node", path=_path()) or "node"


def ensure_installed() -> None:
    """Node (make .dev/.node when missing) and the pinned packages (npm ci when the lock file is newer)."""
    if shutil.which("npm", path=_path()) is None or shutil.which("node", path=_path()) is None:
        print("node/npm missing: make .dev/.node", flush=True)
        subprocess.run(["make", ".dev/.node"], cwd=REPO_ROOT, check=True)
    lock = HERE / "package-lock.json"
    if STAMP.exists() and STAMP.stat().st_mtime >= lock.stat().st_mtime:
        return
    print(f"installing oidc-provider {VERSION} (npm ci in {HERE})...", flush=True)
    subprocess.run([shutil.which("npm", path=_path()), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=HERE, check=True, env={**os.environ, "PATH": _path()})
    STAMP.touch()


def start(log_dir: Path, *, port: int | None = None, mongo_uri: str | None = None) -> PeerProcess:
    """Start the provider on 127.0.0.1 (in memory, or on `mongo_uri`, which must carry retryWrites=false)."""
    ensure_installed()
    port = port or processes.free_port()
    argv = [node(), str(HERE / "provider.mjs"), "--port", str(port)]
    if mongo_uri:
        if "retryWrites=false" not in mongo_uri:
            raise ValueError("the local database takes no retryable writes: the URI must carry retryWrites=false")
        argv += ["--mongo", mongo_uri]
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"oidc-provider-{port}.log"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(argv, cwd=HERE, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "NODE_ENV": "production", "PATH": _path()})
    peer = PeerProcess("oidc-provider", process, f"http://127.0.0.1:{port}", log_file)
    peer.wait_ready(port)
    return peer


def mongo_uri_on(mongo_port: int, database: str = "oidc_peer") -> str:
    """The peer's own database on the stack's local MongoDB-protocol server (retryWrites=false, as the platform's)."""
    return f"mongodb://127.0.0.1:{mongo_port}/{database}?retryWrites=false"

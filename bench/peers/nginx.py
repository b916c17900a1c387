"""nginx as a peer of the gateway: Debian's package (`apt-get install -y nginx-light` when `nginx` is missing; we
run as root), one worker, in the foreground from a configuration generated in a folder of its own, proxying path
prefixes to upstreams with keep-alive connections; stopped by its PID.

Both sides log: nginx keeps its default access log (the `combined` format, one line per request) in its folder,
as the gateway writes its own access lines to its log file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from libs.devstack import processes

from . import PeerProcess

_SBIN = "/usr/sbin:/usr/local/sbin"


def binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path=_SBIN)


def ensure_installed() -> str:
    found = binary()
    if found:
        return found
    print("nginx missing: apt-get install -y nginx-light", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "nginx-light"]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = binary()
    if not found:
        raise RuntimeError("nginx is still not on PATH after installing nginx-light")
    return found


def config(folder: Path, port: int, routes: Mapping[str, int], *, cache: bool = False) -> str:
    """nginx.conf: listen on 127.0.0.1:`port`; each path prefix in `routes` to its upstream port (keep-alive).

    With `cache`, nginx's own shared cache (`proxy_cache`) in front of every route, which keeps what the upstream's
    Cache-Control allows (and, by nginx's defaults, never a request with Authorization or an answer with
    Set-Cookie): the like of the gateway's cache for public documents."""
    caching = "\n            proxy_cache harbour;" if cache else ""
    upstreams = "\n".join(
        f"    upstream u{upstream} {{ server 127.0.0.1:{upstream}; keepalive 64; }}" for upstream in sorted(set(routes.values())))
    locations = "\n".join(f"""        location {prefix} {{
            proxy_pass http://u{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;{caching}
        }}""" for prefix, upstream in routes.items())
    cache_path = f"\n    proxy_cache_path {folder}/cache keys_zone=harbour:1m max_size=16m;" if cache else ""
    # Started as root, nginx's worker would run as nobody, who can neither reach the bench's private folder nor
    # write its cache files there: the worker stays the user that started it.
    user = "user root;\n" if cache and os.geteuid() == 0 else ""
    return f"""daemon off;
{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;{cache_path}
{upstreams}
    server {{
        listen 127.0.0.1:{port};
{locations}
        location / {{ return 404; }}
    }}
}}
"""


def start(folder: Path, routes: Mapping[str, int], *, port: int | None = None, cache: bool = False) -> PeerProcess:
    """nginx in the foreground (its master our child, one worker under it), configured in `folder`."""
    nginx = ensure_installed()
    port = port or processes.free_port()
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(config(folder, port, routes, cache=cache))
    log_file = folder / "stdout.log"
    with open(log_file, "ab") as log:
        process = subprocess.Popen([nginx, "-e", str(folder / "error.log"), "-p", str(folder), "-c", str(conf)],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    peer = PeerProcess("nginx", process, f"http://127.0.0.1:{port}", log_file)
    peer.wait_ready(port)
    return peer


def stop(peer: PeerProcess) -> None:
    peer.stop(signal.SIGQUIT)  # graceful: the worker finishes its requests

"""The gateway against nginx in front of the same upstreams: discovery and a bearer GET, req/s and p50/p99.

From a fresh clone:

    make install
    .venv/bin/python bench/gateway.py [--requests 3000] [--concurrency 16] [--runs 3] [--use-running]

Starts a private stack on free ports (its own folder under .dev/, stopped by PID at the end; or, with
--use-running, measures the stack `make up` runs, unpinned and with its own rate limits) and nginx (Debian's
nginx-light, installed with apt-get when `nginx` is missing; one worker, foreground, keep-alive upstream
connections, its default access log to a file, as the gateway logs its own) proxying the same paths to the same
services. Pins the system under test (broker, database, services, dispatcher, nginx) to one CPU and this process,
the load generator, to the other. Each comparison runs `--runs` times, interleaved, and the medians are printed:

1. `GET /.well-known/openid-configuration`: straight at auth (for reference: what the proxies add), through the
   gateway, through nginx to the same auth. The gateway answers discovery from its shared cache (docs/api.md,
   *The gateway's cache*), so the same document is also measured two more ways, each against its like: with
   `Cache-Control: no-store` from the caller (the gateway's proxy path alone, against the same nginx), and
   against a second nginx with its own `proxy_cache` (cache against cache).
2. A bearer GET: `GET /v1/templates` (notify: the agency's templates, one indexed read of an empty list) with an
   agency's client-credentials access token (scope `notify`, from `POST /oidc/token`): through the gateway (which
   verifies the token at the edge, as its routing table says) and through nginx (which forwards it as is; notify
   verifies it again either way).

Goals (issue 17): gateway ≥ 0.8× nginx on the bearer route, ≥ 0.6× on discovery (the first discovery line; the
second shows the proxy path alone, the third cache against cache — bound by the load generator when nginx's cache
answers: its `busy` figures say so). Loopback only; bounded; stops
by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support  # noqa: E402
from bench.peers import nginx  # noqa: E402
from libs.devstack import load_running_stack  # noqa: E402

DISCOVERY = "/.well-known/openid-configuration"
BEARER_PATH = "/v1/templates"


async def agency_token(gateway: str, admin_token: str) -> str:
    """An agency registered through `POST /v1/clients` (operator token), and its client-credentials access token."""
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway + "/v1/clients", json={"client_name": "Bench Agency", "kind": "agency", "scope": "notify"},
                             headers={"Authorization": f"Bearer {admin_token}"}) as response:
            client = await response.json()
            if response.status != 201:
                raise RuntimeError(f"registration answered {response.status}: {client}")
        async with http.post(gateway + "/oidc/token", data={"grant_type": "client_credentials", "scope": "notify"},
                             headers={"Authorization": aiohttp.encode_basic_auth(client["client_id"], client["client_secret"])}) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"the token answered {response.status}: {body}")
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        async with http.get(gateway + BEARER_PATH, headers=bearer) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {BEARER_PATH} answered {response.status}: {await response.text()}")
    return body["access_token"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    support.add_load_arguments(parser, requests=3000)
    parser.add_argument("--use-running", action="store_true", help="measure the stack `make up` runs (unpinned)")
    args = parser.parse_args()
    support.check_load_arguments(parser, args)

    pinning = support.cpus() if not args.use_running else support.Pinning(None, None)
    support.pin_bench(pinning)
    nginx.ensure_installed()
    support.header("bench/gateway.py: the gateway vs nginx", args)
    with contextlib.ExitStack() as cleanup:
        if args.use_running:
            stack = load_running_stack(support.REPO_ROOT / ".dev")
            if stack is None:
                parser.error("no running stack (make up)")
            print("measuring the running stack: not pinned, its own rate limits apply", flush=True)
        else:
            stack = cleanup.enter_context(support.private_stack("gateway"))
        ports = stack.config.service_ports
        folder = stack.dev_dir / "peers" / "nginx"
        cleanup.callback(shutil.rmtree, folder, True)
        routes = {"/.well-known/": ports["auth"], "/oidc/": ports["auth"], BEARER_PATH: ports["notify"]}
        proxy = nginx.start(folder, routes)
        cleanup.callback(nginx.stop, proxy)
        cache_folder = folder.with_name("nginx-cache")
        cleanup.callback(shutil.rmtree, cache_folder, True)  # removed after it stopped (callbacks run last first)
        caching_proxy = nginx.start(cache_folder, routes, cache=True)
        cleanup.callback(nginx.stop, caching_proxy)
        if not args.use_running:  # a running stack is someone's: its processes keep their CPUs
            support.pin(pinning, {**support.stack_processes(stack), "nginx": proxy.pid, "nginx-cache": caching_proxy.pid})
        gateway, auth = stack.config.service_url("gateway"), stack.config.service_url("auth")
        token = support.run(agency_token(gateway, support.admin_token(stack)))

        load = {"requests": args.requests, "concurrency": args.concurrency, "runs": args.runs}
        what = f"GET {DISCOVERY}"
        no_store = {"Cache-Control": "no-store"}
        discovery = support.measure(what, {
            "direct": support.http_call("GET", auth + DISCOVERY),
            "harbour": support.http_call("GET", gateway + DISCOVERY),
            "nginx": support.http_call("GET", proxy.url + DISCOVERY),
            "harbour-no-store": support.http_call("GET", gateway + DISCOVERY, headers=no_store),
            "nginx-no-store": support.http_call("GET", proxy.url + DISCOVERY, headers=no_store),
            "nginx-cache": support.http_call("GET", caching_proxy.url + DISCOVERY),
        }, **load)
        lines = [
            support.comparison_line(f"{what} (gateway vs nginx)", discovery["harbour"], "nginx", discovery["nginx"]),
            support.comparison_line(f"{what} the proxy path alone (no-store: gateway vs nginx)",
                                    discovery["harbour-no-store"], "nginx", discovery["nginx-no-store"]),
            support.comparison_line(f"{what} cache against cache (gateway vs nginx proxy_cache)",
                                    discovery["harbour"], "nginx-cache", discovery["nginx-cache"]),
            f"{what} straight at auth: {support.side('direct', discovery['direct'])} | gateway/direct "
            f"{discovery['harbour'].rps / discovery['direct'].rps:.2f}, nginx/direct {discovery['nginx'].rps / discovery['direct'].rps:.2f}",
        ]
        print("\n".join(lines), flush=True)
        bearer = {"Authorization": f"Bearer {token}"}
        what = f"bearer GET {BEARER_PATH}"
        ours, theirs = support.compare(what, support.http_call("GET", gateway + BEARER_PATH, headers=bearer),
                                       "nginx", support.http_call("GET", proxy.url + BEARER_PATH, headers=bearer), **load)
        lines.append(support.comparison_line(f"{what} (gateway vs nginx)", ours, "nginx", theirs))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

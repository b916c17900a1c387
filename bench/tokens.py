"""client_credentials tokens: Harbour ID's auth, straight and through the gateway, against node-oidc-provider.

From a fresh clone:

    make install
    .venv/bin/python bench/tokens.py [--requests 3000] [--concurrency 16] [--runs 3]

Starts a private stack on free ports (its own folder under .dev/, stopped by PID at the end) and
node-oidc-provider 9.13.3 with its in-memory adapter (installed by `npm ci` from bench/peers/oidc-provider/
when missing; node from the machine or `make .dev/.node`). Registers an agency client (scope `notify`,
client_secret_basic) through `POST /v1/clients` with the operator token, as docs/api.md describes; the peer has
its own fixed client_credentials client (scope `api`). Both answer with ES256-signed JWT access tokens.

Pins the whole system under test (broker, database, services, dispatcher, the peer) to one CPU and this process,
the load generator, to the other, then runs each comparison `--runs` times, interleaved, and prints the medians:

    tokens straight at auth: harbour X/s p50 … p99 Y ms | oidc-provider X/s … | ratio R
    tokens through the gateway: harbour X/s … | oidc-provider X/s … | ratio R

Goals (issue 17): straight at auth ≥ 1.0×, through the gateway ≥ 0.6× oidc-provider. Loopback only; bounded;
stops by itself.

`--dpop` (issue 20) measures instead, in the same run and interleaved, Harbour's tokens with a DPoP proof (RFC 9449:
a fresh ES256 proof per request, made by jwcrypto in the load generator; checked, its jti stored, the tokens bound
to the key) next to the same requests without one, straight at auth and through the gateway (no peer started):

    DPoP tokens straight at auth: dpop X/s p50 … p99 … | bearer X/s … | ratio R (dpop over bearer)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support  # noqa: E402
from bench.peers import oidc_provider  # noqa: E402

TOKEN_FORM = {"grant_type": "client_credentials", "scope": "notify"}


async def register_agency(gateway: str, admin_token: str) -> tuple[str, str]:
    """An agency client with the `notify` scope, through the documented registration API; (client_id, secret)."""
    body = {"client_name": "Bench Agency", "kind": "agency", "scope": "notify"}
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway + "/v1/clients", json=body,
                             headers={"Authorization": f"Bearer {admin_token}"}) as response:
            answer = await response.json()
            if response.status != 201:
                raise RuntimeError(f"registration answered {response.status}: {answer}")
        client_id, secret = answer["client_id"], answer["client_secret"]
        # One token first: the client must be known to auth before the load starts.
        async with http.post(gateway + "/oidc/token", data=TOKEN_FORM,
                             headers={"Authorization": aiohttp.encode_basic_auth(client_id, secret)}) as response:
            if response.status != 200:
                raise RuntimeError(f"the first token answered {response.status}: {await response.text()}")
    return client_id, secret


def dpop_call(url: str, htu: str, headers: dict[str, str], data: dict[str, str]) -> support.Call:
    """POST `url` with a new DPoP proof (ES256, jwcrypto: support.DPoPKey) each time, as an outside client would send it."""
    key = support.DPoPKey()

    async def call(session) -> int:
        async with session.post(url, headers={**headers, "DPoP": key.proof("POST", htu)}, data=data) as response:
            body = await response.read()
            if response.status == 200 and b'"DPoP"' not in body:
                return 500  # not bound: counted as an error
            return response.status

    return call


def dpop_mode(args, stack) -> list[str]:
    gateway, auth = stack.config.service_url("gateway"), stack.config.service_url("auth")
    client_id, secret = support.run(register_agency(gateway, support.admin_token(stack)))
    basic = {"Authorization": aiohttp.encode_basic_auth(client_id, secret)}
    lines = []
    for what, base in (("DPoP tokens straight at auth", auth), ("DPoP tokens through the gateway", gateway)):
        # The proof names the token endpoint as discovery publishes it (the issuer's), wherever it is sent.
        sides = {"bearer": support.http_call("POST", base + "/oidc/token", headers=basic, data=TOKEN_FORM),
                 "dpop": dpop_call(base + "/oidc/token", gateway + "/oidc/token", basic, TOKEN_FORM)}
        summaries = support.measure(what, sides, requests=args.requests, concurrency=args.concurrency, runs=args.runs)
        # ratio: DPoP tokens/s over bearer tokens/s
        lines.append(support.comparison_line(what, summaries["dpop"], "bearer", summaries["bearer"], name="dpop"))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    support.add_load_arguments(parser, requests=3000)
    parser.add_argument("--dpop", action="store_true", help="tokens with DPoP proofs next to without (no peer)")
    args = parser.parse_args()
    support.check_load_arguments(parser, args)
    if args.dpop:
        pinning = support.cpus()
        support.pin_bench(pinning)
        support.header("bench/tokens.py --dpop: client_credentials tokens with and without DPoP", args)
        with support.private_stack("tokens") as stack:
            support.pin(pinning, support.stack_processes(stack))
            lines = dpop_mode(args, stack)
        print("\n".join(lines))
        return 0

    pinning = support.cpus()
    support.pin_bench(pinning)
    oidc_provider.ensure_installed()
    support.header("bench/tokens.py: client_credentials tokens", args)
    with support.private_stack("tokens") as stack:
        with oidc_provider.start(stack.dev_dir / "peers") as peer:
            support.pin(pinning, {**support.stack_processes(stack), "oidc-provider": peer.pid})
            gateway, auth = stack.config.service_url("gateway"), stack.config.service_url("auth")
            client_id, secret = support.run(register_agency(gateway, support.admin_token(stack)))
            harbour_basic = {"Authorization": aiohttp.encode_basic_auth(client_id, secret)}
            peer_basic = {"Authorization": aiohttp.encode_basic_auth(*oidc_provider.CC_CLIENT)}
            peer_call = support.http_call("POST", peer.url + "/token", headers=peer_basic,
                                          data={"grant_type": "client_credentials", "scope": "api"})
            lines = []
            for what, base in (("tokens straight at auth", auth), ("tokens through the gateway", gateway)):
                harbour_call = support.http_call("POST", base + "/oidc/token", headers=harbour_basic, data=TOKEN_FORM)
                ours, theirs = support.compare(what, harbour_call, "oidc-provider", peer_call,
                                               requests=args.requests, concurrency=args.concurrency, runs=args.runs)
                lines.append(support.comparison_line(what, ours, "oidc-provider", theirs))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""node-oidc-provider's complete code + PKCE logins per second: the peer of bench/logins.py (which runs this).

    .venv/bin/python bench/peers/oidc-provider/logins.py [--adapter memory|mongodb] [--mongo-uri URI]
                                                         [--logins 300] [--concurrency 8]

Starts the provider (bench/peers/oidc_provider.py; in memory, or with its MongoDB adapter on a database
`oidc_peer` of the server `--mongo-uri` names, with retryWrites=false), pins it to the system-under-test CPU and
this process to the other (as bench/support.py does), and times complete logins, each with a cookie jar of its own:

    GET /auth (PKCE S256, login_hint)  303 /interaction/<uid>
    GET /interaction/<uid>             303 /auth/<uid>          (the login prompt finished at once)
    GET /auth/<uid>                    303 redirect_uri?code=…  (loadExistingGrant: no consent prompt)
    POST /token                        200 access + ID token   (client_secret_basic, code_verifier)

The last line printed is the result: `oidc-provider (<adapter>) code+PKCE logins: X/s p50 … ms p99 … ms, concurrency
N; provider CPU per login Y ms` (the provider's utime+stime over the logins, warm-up included, divided by them).
Loopback only; bounded; stops the provider by PID.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench import support  # noqa: E402
from bench.peers import oidc_provider  # noqa: E402

REDIRECT = oidc_provider.REDIRECT_URI


def login_call(base: str):
    """One complete login (status 200 when the token endpoint answered with an ID token)."""
    basic = {"Authorization": aiohttp.encode_basic_auth(*oidc_provider.CODE_CLIENT)}

    async def call(session: aiohttp.ClientSession) -> int:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {"client_id": oidc_provider.CODE_CLIENT[0], "redirect_uri": REDIRECT, "response_type": "code",
                  "scope": "openid", "state": secrets.token_urlsafe(12), "nonce": secrets.token_urlsafe(12),
                  "code_challenge": challenge, "code_challenge_method": "S256",
                  "login_hint": f"citizen-{secrets.randbelow(1000)}"}
        # A browser of its own (cookies for 127.0.0.1 kept), on the load generator's connections.
        async with aiohttp.ClientSession(connector=session.connector, connector_owner=False,
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            url, query = base + "/auth", params
            for _ in range(5):
                async with browser.get(url, params=query, allow_redirects=False) as response:
                    await response.read()
                    if response.status not in (302, 303):
                        return response.status
                    location = response.headers["Location"]
                if location.startswith(REDIRECT):
                    break
                url, query = (location if location.startswith("http") else base + location), None
            else:
                return 508  # a redirect loop
            code = parse_qs(urlsplit(location).query)["code"][0]
            async with browser.post(base + "/token", headers=basic, data={
                    "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                    "code_verifier": verifier}) as response:
                body = await response.json(content_type=None)
                return response.status if "id_token" in body else 502

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", choices=("memory", "mongodb"), default="memory")
    parser.add_argument("--mongo-uri", help="the local MongoDB-protocol server (mongodb://127.0.0.1:PORT/...)")
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not 1 <= args.logins <= 100_000 or not 1 <= args.concurrency <= 256:
        parser.error("--logins 1..100000, --concurrency 1..256")
    mongo = None
    if args.adapter == "mongodb":
        if not args.mongo_uri:
            parser.error("--adapter mongodb needs --mongo-uri")
        port = urlsplit(args.mongo_uri).port
        if port is None:
            parser.error("--mongo-uri must name the port")
        mongo = oidc_provider.mongo_uri_on(port)

    pinning = support.cpus()
    support.pin_bench(pinning)
    with tempfile.TemporaryDirectory(prefix="bench-oidc-provider-") as folder:
        with oidc_provider.start(Path(folder), mongo_uri=mongo) as peer:
            support.pin(pinning, {"oidc-provider": peer.pid})
            cpu_before = support.process_cpu_s(peer.pid)
            result = support.run(support.run_load(login_call(peer.url), requests=args.logins,
                                                  concurrency=args.concurrency, warmup=args.concurrency))
            cpu_per_login = (support.process_cpu_s(peer.pid) - cpu_before) / (args.logins + args.concurrency)
    errors = f" ({result.errors} errors: {result.error_kinds})" if result.errors else ""
    print(f"oidc-provider ({args.adapter}) code+PKCE logins: {support._rate(result.rps)} p50 {result.p50_ms:.1f} ms "
          f"p99 {result.p99_ms:.1f} ms, concurrency {args.concurrency}{errors}; provider CPU per login "
          f"{cpu_per_login * 1000:.1f} ms")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Signing throughput: CMS signatures/s through the API next to raw PKCS#11 signatures/s on the same token.

    .venv/bin/python bench/signing.py [--signatures 60] [--pdfs 20] [--concurrency 8] [--raw-seconds 3] [--rp-wait 20]

Starts its own private stack on free ports (or uses the one `make up` runs
with --use-running), then, in the same run and on the same SoftHSM2 token:

1. raw PKCS#11: ECDSA P-256 signatures/s over a SHA-256 digest with a key
   generated in the token for the bench (python-pkcs11, one session, the
   floor under everything else);
2. the TSA through the gateway: RFC 3161 timestamps/s (one HSM signature
   each, plus the HTTP and ASN.1 around it);
3. CMS signatures through the API: whole journeys per second — a relying
   party POSTs a hash (anonymous, client-credentials token), the reference
   citizen app opens the link, claims it and approves with its device key,
   signing consumes the decision, issues the certificate the first time,
   signs (CAdES-B-LT: a signature, a timestamp and the validation data) and
   the relying party fetches the CMS — held for the answer (`?wait=20`), or
   with --rp-wait 0 polling every 50 ms as a relying party without it does.
   A citizen's "yes" is part of every API
   signature, so that is what "through the API" costs; printed with each
   process's CPU per journey (/proc, the process alone), the database's
   operations per journey (serverStatus opcounters, the relying party's
   requests for the result included) and those requests per journey;
4. PDF signatures through the API, the same journey with a one-page PDF:
   PAdES-B-LTA (the signature and its timestamp, the DSS, a document
   timestamp). For both, signing's own histogram gives the time it spent
   making the signature, and harbour_signing_validation_data_seconds the time
   gathering the CRLs and OCSP answers the signature carries, before it.

Loopback only; stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clients.citizen_app import CitizenApp, Profile  # noqa: E402
from bench import support  # noqa: E402
from bench.logins import OPS, Database, cpu_of  # noqa: E402
from libs.devstack import DevStack  # noqa: E402
from services.auth.identity.hkid import check_digit  # noqa: E402


def raw_pkcs11(env: dict[str, str], seconds: float) -> float:
    """Signatures/s straight on the token: the service's own key labels are not touched."""
    os.environ["SOFTHSM2_CONF"] = env["SOFTHSM2_CONF"]  # read by SoftHSM2 when the module loads
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters

    token = pkcs11.lib(env["HARBOUR_SIGNING_PKCS11_MODULE"]).get_token(token_label=env["HARBOUR_SIGNING_TOKEN_LABEL"])
    with token.open(rw=True, user_pin=env["HARBOUR_SIGNING_HSM_PIN"]) as session:
        params = session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        public, private = params.generate_keypair(store=False, label=f"bench-{secrets.token_hex(4)}",
                                                  private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        digest = hashlib.sha256(b"bench").digest()
        for _ in range(100):
            private.sign(digest, mechanism=Mechanism.ECDSA)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            private.sign(digest, mechanism=Mechanism.ECDSA)
            count += 1
        return count / (time.perf_counter() - started)


async def timestamps(gateway: str, count: int, concurrency: int) -> tuple[float, dict[str, int]]:
    """Timestamps/s, and the answers other than 200 by status and problem (counted, not fatal: a bench reports them)."""
    query = subprocess.run(["openssl", "ts", "-query", "-digest", hashlib.sha256(b"bench").hexdigest(), "-sha256", "-cert"],
                           capture_output=True, check=True).stdout
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    failed: dict[str, int] = {}
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                async with session.post(gateway + "/v1/signing/tsa", data=query, headers={"Content-Type": "application/timestamp-query"}) as response:
                    body = await response.read()
                    if response.status != 200:
                        try:
                            kind = f"{response.status} {json.loads(body).get('detail', '')}"
                        except ValueError:
                            kind = str(response.status)
                        failed[kind] = failed.get(kind, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (count - sum(failed.values())) / (time.perf_counter() - started), failed


async def citizen_and_client(stack: DevStack, folder: Path) -> tuple[CitizenApp, str]:
    env = {**os.environ, **stack.config.service_env()}
    gateway = stack.config.service_url("gateway")

    def admin(*args: str) -> dict:
        return json.loads(subprocess.run([sys.executable, "-m", "services.auth.admin", *args, "--operator", "bench",
                                          "--reason", "benchmark setup"], env=env,
                                         capture_output=True, text=True, check=True).stdout)

    kiosk = admin("create-client", "--kind", "kiosk", "--name", "Bench Kiosk", "--scope", "enrol")
    rp = admin("create-client", "--kind", "relying_party", "--name", "Bench Signing Portal", "--scope", "sign",
               "--redirect-uri", "http://127.0.0.1:8765/callback")
    digits = f"{random.randrange(10**6):06d}"  # a fresh identity card number: enrolment refuses duplicates
    person = {"id_number": f"B{digits}({check_digit('B', digits)})", "name_en": "BENCH Citizen", "date_of_birth": "1980-01-01", "gender": "X",
              "phone": "+85291234567", "email": f"bench-{secrets.token_hex(4)}@example.hk", "address": "1 Bench Road", "language": "en"}
    picture = io.BytesIO()
    Image.frombytes("RGB", (160, 160), os.urandom(160 * 160 * 3)).save(picture, format="PNG")
    enrolment = await CitizenApp(Profile(gateway_url=gateway)).enrol(person, picture.getvalue(), kiosk=(kiosk["client_id"], kiosk["client_secret"]))
    app = CitizenApp(Profile(gateway_url=gateway), folder / "bench-phone.json")
    await app.activate(enrolment["account_id"], enrolment["activation_code"], "bench-phone")
    async with aiohttp.ClientSession() as session:
        async with session.post(gateway + "/oidc/token", data={"grant_type": "client_credentials", "scope": "sign"},
                                headers={"Authorization": aiohttp.encode_basic_auth(rp["client_id"], rp["client_secret"])}) as response:
            token = (await response.json())["access_token"]
    return app, token


def one_page_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text="Bench application for a harbour berth")
    return bytes(pdf.output())


async def journeys(gateway: str, app: CitizenApp, token: str, count: int, concurrency: int,
                   pdf: bytes | None = None, before_timed=lambda: None, rp_wait_s: int = 20,
                   result_requests: list[int] | None = None) -> tuple[float, list[float]]:
    """`count` journeys (`concurrency` at a time): a hash to sign, or `pdf`; `before_timed()` after the warm-up.
    The relying party asks for the result held up to `rp_wait_s` (0: polling every 50 ms); `result_requests` gets
    how many requests for the result each timed journey made."""
    headers = {"Authorization": f"Bearer {token}"}
    held = {"wait": str(rp_wait_s)} if rp_wait_s else {}
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    async with aiohttp.ClientSession() as session:
        async def one(i: int) -> None:
            started = time.perf_counter()
            body = {"document_name": f"bench-{i}.txt", "sha256": hashlib.sha256(f"{i}-{secrets.token_hex(8)}".encode()).hexdigest()}
            send = {"json": body, "headers": headers} if pdf is None else {
                "data": pdf, "params": {"document_name": f"bench-{i}.pdf"}, "headers": {**headers, "Content-Type": "application/pdf"}}
            while True:  # 409 + Retry-After until signing has the client in its projection
                async with session.post(gateway + "/v1/signing/requests", **send) as response:
                    if response.status == 201:
                        created = await response.json()
                        break
                    if response.status != 409:
                        raise RuntimeError(f"create answered {response.status}: {await response.text()}")
                await asyncio.sleep(0.2)
            await app.open_link(created["app_link"])
            url = f"{gateway}/v1/signing/requests/{created['request_id']}/result"
            asked = 0
            while True:
                asked += 1
                async with session.get(url, headers=headers, params=held) as response:
                    if response.status == 200:
                        await response.read()
                        break
                    if response.status != 409:
                        raise RuntimeError(f"result answered {response.status}: {await response.text()}")
                if not held:
                    await asyncio.sleep(0.05)
            latencies.append(time.perf_counter() - started)
            if result_requests is not None and i >= 0:
                result_requests.append(asked)

        async def worker() -> None:
            while not queue.empty():
                await one(queue.get_nowait())

        await one(-1)  # warm-up: issues the citizen's certificate (one HSM key generation)
        before_timed()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started), sorted(latencies)


def signing_step_ms(metrics_url: str, kind: str | None = "cms", histogram: str = "harbour_signing_signature_seconds") -> float | None:
    """Mean time signing spent on one signature of `kind` (None: a histogram without labels), from its own histogram;
    None when it has none (the validation data's histogram is younger than the signatures')."""
    wanted = {"kind": kind} if kind else {}
    values = {sample.name: sample.value for sample in support.scrape(metrics_url, histogram) if sample.labels == wanted}
    count = values.get(f"{histogram}_count")
    return 1000 * values[f"{histogram}_sum"] / count if count else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signatures", type=int, default=60, help="API journeys to time")
    parser.add_argument("--pdfs", type=int, default=20, help="PDF journeys to time (0: none)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timestamps", type=int, default=500)
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    parser.add_argument("--use-running", action="store_true", help="measure the stack `make up` runs")
    parser.add_argument("--rp-wait", type=int, default=20,
                        help="seconds the relying party asks to be held for the result (?wait=); 0: poll every 50 ms")
    args = parser.parse_args()
    if not 1 <= args.signatures <= 10_000 or not 0 <= args.pdfs <= 10_000 or not 1 <= args.concurrency <= 64 \
            or not 0 <= args.rp_wait <= 20:
        parser.error("--signatures 1..10000, --pdfs 0..10000, --concurrency 1..64, --rp-wait 0..20")

    with support.bench_stack("signing", use_running=args.use_running) as stack:
        env = stack.config.service_env()
        gateway = stack.config.service_url("gateway")
        raw = raw_pkcs11(env, args.raw_seconds)
        tsa, tsa_failed = asyncio.run(timestamps(gateway, args.timestamps, args.concurrency))
        # Where a hash signature's journey spends CPU and database operations: each process alone (not its children),
        # and the database's opcounters (the relying party's polling of the result every 50 ms included).
        pids = {name: pid for name, pid in stack.status().items() if pid is not None}
        db = Database(stack.config.mongo_uri)
        before: dict = {}
        result_requests: list[int] = []

        def before_timed() -> None:
            before.update(cpu=cpu_of(pids), ops=db.opcounters(), top=db.by_collection())

        with tempfile.TemporaryDirectory() as folder:
            async def api() -> tuple[tuple[float, list[float]], tuple[float, list[float]] | None]:
                app, token = await citizen_and_client(stack, Path(folder))
                cms_run = await journeys(gateway, app, token, args.signatures, args.concurrency, before_timed=before_timed,
                                         rp_wait_s=args.rp_wait, result_requests=result_requests)
                before.update(cpu_after=cpu_of(pids), ops_after=db.opcounters(), top_after=db.by_collection())
                pdf_run = await journeys(gateway, app, token, args.pdfs, args.concurrency, one_page_pdf(),
                                 rp_wait_s=args.rp_wait) if args.pdfs else None
                return cms_run, pdf_run

            (cms_rate, latencies), pdf_run = asyncio.run(api())
        metrics = stack.config.metrics_url("signing")
        making = signing_step_ms(metrics)
        making_pdf = signing_step_ms(metrics, "pdf") if pdf_run else None
        validation = signing_step_ms(metrics, None, "harbour_signing_validation_data_seconds")
    print(f"same SoftHSM2 token ({env['HARBOUR_SIGNING_TOKEN_LABEL']}), ECDSA P-256, same run")
    print(f"{'raw PKCS#11 C_Sign (one session)':44} {raw:10.0f} signatures/s")
    print(f"{'TSA through the gateway (concurrency ' + str(args.concurrency) + ')':44} {tsa:10.1f} timestamps/s"
          + (f" — NOT answered: {tsa_failed}" if tsa_failed else ""))
    print(f"{'CMS through the API, approved on the app':44} {cms_rate:10.2f} signatures/s "
          f"(p50 {statistics.median(latencies) * 1000:.0f} ms, p90 {latencies[int(len(latencies) * 0.9) - 1] * 1000:.0f} ms per journey)")
    print(f"{'  of which making the CMS (HSM + TSA + ASN.1)':44} {making:10.1f} ms each (harbour_signing_signature_seconds)")
    cpu_ms = {name: 1000 * (before["cpu_after"][name] - before["cpu"][name]) / args.signatures for name in pids}
    print("  CPU per CMS journey: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in sorted(cpu_ms.items(), key=lambda kv: -kv[1])
                                                 if ms >= 0.05) + f"; total {sum(cpu_ms.values()):.0f} ms")
    ops = {kind: (before["ops_after"][kind] - before["ops"][kind]) / args.signatures for kind in OPS}
    print(f"  the relying party's requests for the result per CMS journey: {statistics.mean(result_requests):.2f} "
          + (f"(held up to {args.rp_wait} s: ?wait={args.rp_wait})" if args.rp_wait else "(polling every 50 ms)"))
    print(f"  database operations per CMS journey: {sum(ops.values()):.1f} ("
          + ", ".join(f"{kind} {n:.1f}" for kind, n in ops.items()) + "; the idle stack's own included)")
    by_collection = {ns: (n - before["top"].get(ns, 0)) / args.signatures for ns, n in before["top_after"].items()}
    print("  by collection, idle included: " + ", ".join(f"{ns} {n:.2f}" for ns, n in sorted(by_collection.items(), key=lambda kv: -kv[1])
                                                          if n >= 0.1))
    if pdf_run:
        pdf_rate, pdf_latencies = pdf_run
        print(f"{'PDF through the API, approved on the app':44} {pdf_rate:10.2f} signatures/s "
              f"(p50 {statistics.median(pdf_latencies) * 1000:.0f} ms, p90 {pdf_latencies[int(len(pdf_latencies) * 0.9) - 1] * 1000:.0f} ms)")
        print(f"{'  of which making the signed PDF':44} {making_pdf:10.1f} ms each (harbour_signing_signature_seconds)")
    if validation is not None:
        print(f"{'gathering validation data (CRLs, OCSP), per signature':44} {validation:10.1f} ms each (harbour_signing_validation_data_seconds)")
    print(f"raw / API: {raw / cms_rate:.0f}x — the HSM is not the bottleneck: a journey's CPU across the stack is (above, per process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

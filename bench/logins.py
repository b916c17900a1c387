"""Complete logins per second: authorization code + PKCE through the gateway, approved on the phone.

    .venv/bin/python bench/logins.py [--logins 300] [--concurrency 8] [--use-running] [--no-peers]
    .venv/bin/python bench/logins.py --dpop [--logins 300] [--runs 2]

Starts its own private stack on free ports (or measures the one `make up`
runs with --use-running), registers a relying party through the platform's
API (POST /v1/clients), enrols one citizen per concurrent worker at a kiosk
and activates their phone with the reference app library
(clients/citizen_app), then runs complete logins, each:

    browser  GET /oidc/authorize (the login page: app link, status URL)
    phone    POST /v1/approvals/links (claim), POST …/decision (device-signed),
             with a device token (POST /v1/devices/token) the app keeps until a
             minute before it expires (before issue 17: a fresh one per call,
             and GET /v1/approvals/{id} before deciding)
    browser  GET …/status                      approved
             GET …/complete                    303 to redirect_uri?code=…&state=…&iss=…
    client   POST /oidc/token (client_secret_basic, code_verifier)
             ID token verified (ES256 against the JWKS, iss, aud, nonce)

and prints logins/s, p50/p99 per login, CPU seconds per login of each
process of the stack (utime+stime from /proc), and the database operations
per login: the database's serverStatus `opcounters` after minus before, less
what the idle stack does in the same time (measured just before), divided by
the logins, by kind; and the oplog entries if the database keeps one.

`--dpop` (issue 20) measures instead, on the same stack and client, the same logins each ending with a
userinfo call: with a bearer token, then with the code exchanged under a DPoP proof (RFC 9449; one ES256 key
for the relying party, support.DPoPKey) and userinfo called with the DPoP-bound token and a proof carrying
its `ath`; `--runs` rounds of bearer then DPoP, each run's line, and the medians:

    complete logins + userinfo with DPoP against bearer (logins/s): dpop X/s p50 … p99 … | bearer X/s … | ratio R

Next to it, the same run on the same machine: node-oidc-provider's code flow
(bench/peers/oidc-provider: in memory, and with its MongoDB adapter on a
database of the same local MongoDB-protocol server), the provider pinned to
the system-under-test CPU beside that database as Harbour ID's stack is, with
the provider's CPU per login and, on MongoDB, the database's; and the ratios.
Loopback only; stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
from PIL import Image
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support  # noqa: E402
from clients.citizen_app import CitizenApp, Profile  # noqa: E402
from libs.devstack import DevStack  # noqa: E402
from libs.devstack.config import REPO_ROOT  # noqa: E402
from services.auth.identity.hkid import check_digit  # noqa: E402

REDIRECT = "http://127.0.0.1:8765/callback"  # nothing listens: the bench reads the redirect instead of following it


# --- what the stack's processes and its database did -------------------------------------------------


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    return {name: support.process_cpu_s(pid) for name, pid in pids.items()}


OPS = ("insert", "query", "update", "delete", "getmore", "command")


class Database:
    """The database's own counters: serverStatus opcounters, and the oplog's length if it keeps one."""

    def __init__(self, uri: str) -> None:
        self.client = MongoClient(uri, directConnection=True)

    def opcounters(self) -> dict[str, int]:
        counters = self.client.admin.command("serverStatus").get("opcounters", {})
        return {kind: int(counters.get(kind, 0)) for kind in OPS}

    def oplog_entries(self) -> int | None:
        try:
            return self.client.local["oplog.rs"].estimated_document_count()
        except Exception:  # noqa: BLE001 — a server without an oplog
            return None

    def profile(self, level: int) -> None:
        for name in self.client.list_database_names():
            if name not in ("admin", "local", "config"):
                self.client[name].command("profile", level, slowms=0)

    def profiled(self, logins: int) -> list[str]:
        """Every profiled operation per login, by database.collection, kind and plan, most frequent first, with the
        database's own time for them (the profiler's `millis`, summed, per login)."""
        self.profile(0)
        counts: dict[tuple[str, str, str], list[float]] = {}
        for name in self.client.list_database_names():
            if name in ("admin", "local", "config"):
                continue
            for doc in self.client[name]["system.profile"].find():
                command = doc.get("command") or {}
                kind = doc.get("op", "?")
                if kind == "command":
                    kind = next(iter(command), "?") if isinstance(command, dict) else "?"
                key = (doc.get("ns", "?"), kind, str(doc.get("planSummary", "")))
                seen = counts.setdefault(key, [0, 0.0])
                seen[0] += 1
                seen[1] += float(doc.get("millis") or 0)
        return [f"{n / logins:6.2f}  {ms / logins:6.2f} ms  {ns:50} {kind:16} {plan}"
                for (ns, kind, plan), (n, ms) in sorted(counts.items(), key=lambda kv: -kv[1][0])]

    def by_collection(self) -> dict[str, int]:
        """Operations so far per collection of the platform's databases, by the database's own counters (`top`):
        writes, reads and commands; not `getmore`s (the change stream carrying prompts to phones asks again at once)."""
        totals = self.client.admin.command("top").get("totals", {})
        return {ns.removeprefix("harbour_"): sum((entry.get(kind) or {}).get("count", 0)
                                                 for kind in ("insert", "update", "remove", "queries", "commands"))
                for ns, entry in totals.items() if ns.startswith("harbour_") and isinstance(entry, dict) and "." in ns}

    def sample(self) -> tuple[float, dict[str, int], int | None]:
        return time.perf_counter(), self.opcounters(), self.oplog_entries()


def per_login(before, after, idle_rate: dict[str, float], idle_oplog_rate: float | None, logins: int):
    elapsed = after[0] - before[0]
    ops = {k: max(0.0, (after[1][k] - before[1][k] - idle_rate[k] * elapsed) / logins) for k in OPS}
    oplog = None
    if before[2] is not None and after[2] is not None:
        oplog = max(0.0, (after[2] - before[2] - (idle_oplog_rate or 0) * elapsed) / logins)
    return ops, oplog


def idle_rates(db: Database, seconds: float, pids: dict[str, int]) -> tuple[dict[str, float], float | None, dict[str, float]]:
    """What the idle stack does per second (relays polling, leases, sweeps), to subtract: database operations,
    oplog entries, and each process's CPU seconds per second.

    The oplog is counted outside the CPU's window: counting it walks the whole oplog on the local database (up to
    100,000 entries, seconds of its CPU on a stack that has run for a while), which is the bench's work, not the stack's.
    """
    first_oplog, oplog_from = db.oplog_entries(), time.perf_counter()
    first_cpu, first = cpu_of(pids), (time.perf_counter(), db.opcounters())
    time.sleep(seconds)
    second = (time.perf_counter(), db.opcounters())
    second_cpu = cpu_of(pids)
    cpu_elapsed = time.perf_counter() - first[0]
    second_oplog, oplog_elapsed = db.oplog_entries(), time.perf_counter() - oplog_from
    # The two samples' own serverStatus commands count too: they are part of the idle rate, as they are of the run.
    elapsed = second[0] - first[0]
    rates = {k: (second[1][k] - first[1][k]) / elapsed for k in OPS}
    oplog = (second_oplog - first_oplog) / oplog_elapsed if first_oplog is not None and second_oplog is not None else None
    return rates, oplog, {name: (second_cpu[name] - first_cpu[name]) / cpu_elapsed for name in pids}


def settle(db: Database, idle_rate: dict[str, float], *, quiet_s: float = 1.5, timeout_s: float = 20.0) -> None:
    """Wait until the database is back to its idle rate (consumers applied the events, relays sent them)."""
    deadline = time.monotonic() + timeout_s
    idle_total = sum(idle_rate.values())
    while time.monotonic() < deadline:
        first = db.sample()
        time.sleep(quiet_s)
        second = db.sample()
        rate = sum(second[1][k] - first[1][k] for k in OPS) / (second[0] - first[0])
        if rate <= idle_total * 1.5 + 2:
            return


# --- the platform's side --------------------------------------------------------------------------------


def admin(stack: DevStack, *args: str) -> dict:
    env = {**os.environ, **stack.config.service_env()}
    return json.loads(subprocess.run([sys.executable, "-m", "services.auth.admin", *args, "--operator", "bench",
                                      "--reason", "benchmark setup"], env=env, cwd=REPO_ROOT,
                                     capture_output=True, text=True, check=True).stdout)


def person() -> dict:
    digits = f"{random.randrange(10**6):06d}"  # a fresh identity card number: enrolment refuses duplicates
    return {"id_number": f"B{digits}({check_digit('B', digits)})", "name_en": "BENCH Citizen", "date_of_birth": "1980-01-01",
            "gender": "X", "phone": "+85291234567", "email": f"bench-{secrets.token_hex(4)}@example.hk",
            "address": "1 Bench Road", "language": "en"}


def selfie() -> bytes:
    picture = io.BytesIO()
    Image.frombytes("RGB", (160, 160), os.urandom(160 * 160 * 3)).save(picture, format="PNG")
    return picture.getvalue()


async def citizens(stack: DevStack, folder: Path, count: int) -> list[CitizenApp]:
    gateway = stack.config.service_url("gateway")
    kiosk = admin(stack, "create-client", "--kind", "kiosk", "--name", "Bench Kiosk", "--scope", "enrol")
    apps = []
    for i in range(count):
        enrolment = await CitizenApp(Profile(gateway_url=gateway)).enrol(person(), selfie(), kiosk=(kiosk["client_id"], kiosk["client_secret"]))
        app = CitizenApp(Profile(gateway_url=gateway), folder / f"bench-phone-{i}.json")
        await app.activate(enrolment["account_id"], enrolment["activation_code"], f"bench-phone-{i}")
        apps.append(app)
    return apps


async def register_client(session: aiohttp.ClientSession, gateway: str) -> dict:
    body = {"client_name": "Bench Portal", "redirect_uris": [REDIRECT], "scope": "openid"}
    async with session.post(gateway + "/v1/clients", json=body) as response:
        if response.status != 201:
            raise RuntimeError(f"registering the client answered {response.status}: {await response.text()}")
        return await response.json()


class Login:
    """One complete login as a browser, a phone and a relying party do it."""

    def __init__(self, session: aiohttp.ClientSession, metadata: dict, jwks: dict[str, jwt.PyJWK], rp: dict) -> None:
        self.session, self.metadata, self.jwks, self.rp = session, metadata, jwks, rp
        # --dpop: the relying party's DPoP key (None: bearer tokens), and whether a login ends with a userinfo call.
        self.dpop: support.DPoPKey | None = None
        self.userinfo = False
        self.steps: dict[str, list[float]] = {}
        self.basic = {"Authorization": aiohttp.encode_basic_auth(rp["client_id"], rp["client_secret"])}

    async def _json(self, method: str, url: str, **kwargs) -> dict:
        async with self.session.request(method, url, **kwargs) as response:
            if response.status != 200:
                raise RuntimeError(f"{method} {url.split('?')[0]} answered {response.status}: {await response.text()}")
            return await response.json()

    def _step(self, name: str, started: float) -> float:
        now = time.perf_counter()
        self.steps.setdefault(name, []).append(now - started)
        return now

    async def run(self, app: CitizenApp) -> None:
        t = time.perf_counter()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        params = {"client_id": self.rp["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
                  "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"}
        async with self.session.get(self.metadata["authorization_endpoint"], params=params) as response:
            page = await response.text()
            if response.status != 200:
                raise RuntimeError(f"the authorization endpoint answered {response.status}: {page[:200]}")
        link = re.search(r'href="(harbourid://authorize\?tx=[^"]+)"', page).group(1).replace("&amp;", "&")
        status_url = json.loads(re.search(r'"statusUrl":\s*("[^"]+")', page).group(1))
        t = self._step("page", t)
        await app.open_link(link)  # the phone: device token, claim, show, device-signed approval
        t = self._step("phone", t)
        status = await self._json("GET", status_url)
        if status["status"] != "approved":
            raise RuntimeError(f"after the approval the page sees {status}")
        t = self._step("status", t)
        async with self.session.get(status["redirect_to"], allow_redirects=False) as response:
            if response.status != 303:
                raise RuntimeError(f"complete answered {response.status}: {await response.text()}")
            location = response.headers["Location"]
        t = self._step("complete", t)
        query = parse_qs(urlsplit(location).query)
        if query["state"] != [state] or query["iss"] != [self.metadata["issuer"]]:
            raise RuntimeError(f"the response does not carry the state and issuer: {location}")
        headers = dict(self.basic)
        if self.dpop is not None:  # the proof names the token endpoint as discovery publishes it
            headers["DPoP"] = self.dpop.proof("POST", self.metadata["token_endpoint"])
        tokens = await self._json("POST", self.metadata["token_endpoint"], headers=headers, data={
            "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT, "code_verifier": verifier})
        kind = "DPoP" if self.dpop is not None else "Bearer"
        if tokens.get("token_type", "").lower() != kind.lower():
            raise RuntimeError(f"expected a {kind} token, got token_type {tokens.get('token_type')!r}")
        t = self._step("token", t)
        header = jwt.get_unverified_header(tokens["id_token"])
        claims = jwt.decode(tokens["id_token"], self.jwks[header["kid"]], algorithms=["ES256"],
                            audience=self.rp["client_id"], issuer=self.metadata["issuer"])
        if claims["nonce"] != nonce:
            raise RuntimeError("the ID token carries another nonce")
        if self.userinfo:
            url, access_token = self.metadata["userinfo_endpoint"], tokens["access_token"]
            headers = {"Authorization": f"{kind} {access_token}"}
            if self.dpop is not None:
                headers["DPoP"] = self.dpop.proof("GET", url, access_token)
            info = await self._json("GET", url, headers=headers)
            if info.get("sub") != claims["sub"]:
                raise RuntimeError(f"userinfo names another subject: {info}")
            self._step("userinfo", t)


async def run_logins(gateway: str, apps: list[CitizenApp], count: int, concurrency: int, warmup: int,
                     between=None) -> tuple[float, list[float]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.get(gateway + "/.well-known/openid-configuration") as response:
            metadata = await response.json()
        async with session.get(metadata["jwks_uri"]) as response:
            jwks = {key["kid"]: jwt.PyJWK(key) for key in (await response.json())["keys"]}
        rp = await register_client(session, gateway)
        login = Login(session, metadata, jwks, rp)
        for i in range(warmup):
            await asyncio.wait_for(login.run(apps[i % len(apps)]), 60)  # the client reaches every projection
        if between is not None:
            between()
        result = await timed(login, apps, count, concurrency)
        STEPS.update({name: statistics.median(values) for name, values in login.steps.items()})
        return result.rps, sorted(result.latencies)


async def timed(login: Login, apps: list[CitizenApp], count: int, concurrency: int) -> support.Result:
    """`count` complete logins by `concurrency` workers (each with its own phone); the failed ones in ERRORS."""
    result = support.Result()
    remaining = iter(range(count))
    login.steps.clear()

    async def worker(app: CitizenApp) -> None:
        for _ in remaining:
            started = time.perf_counter()
            try:
                await asyncio.wait_for(login.run(app), 60)
            except Exception as exc:  # noqa: BLE001 — counted and shown, the run goes on
                ERRORS.append(f"{type(exc).__name__}: {str(exc)[:160]}")
                result.errors += 1
                continue
            result.ok += 1
            result.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(apps[i % len(apps)]) for i in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result


async def dpop_runs(gateway: str, apps: list[CitizenApp], count: int, concurrency: int, warmup: int,
                    runs: int) -> dict[str, list[support.Result]]:
    """--dpop: the same logins, each ending with a userinfo call, bearer then DPoP (one key for the relying party, a
    fresh proof at the token endpoint and at userinfo), `runs` rounds back to back on the same stack and client."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.get(gateway + "/.well-known/openid-configuration") as response:
            metadata = await response.json()
        async with session.get(metadata["jwks_uri"]) as response:
            jwks = {key["kid"]: jwt.PyJWK(key) for key in (await response.json())["keys"]}
        login = Login(session, metadata, jwks, await register_client(session, gateway))
        login.userinfo = True
        key = support.DPoPKey()
        results: dict[str, list[support.Result]] = {"bearer": [], "dpop": []}
        for i in range(warmup):  # both kinds, untimed: the client reaches every projection, every path is warm
            login.dpop = key if i % 2 else None
            await asyncio.wait_for(login.run(apps[i % len(apps)]), 60)
        for i in range(runs):
            for name in results:
                login.dpop = key if name == "dpop" else None
                result = await timed(login, apps, count, concurrency)
                results[name].append(result)
                steps = ", ".join(f"{step} {statistics.median(v) * 1000:.0f} ms" for step, v in login.steps.items())
                print(f"  run {i + 1}/{runs} {name}: {result.rps:.1f} logins/s p50 {result.p50_ms:.0f} ms "
                      f"p99 {result.p99_ms:.0f} ms" + (f" ({result.errors} failed)" if result.errors else "")
                      + f"; median per step: {steps}", flush=True)
        return results


ERRORS: list[str] = []  # the logins of the timed run that failed
STEPS: dict[str, float] = {}  # median seconds of each step of a login, from the timed run


def route_means(metrics_url: str) -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) per route of a service's harbour_http_request_duration_seconds."""
    out: dict[str, tuple[float, float]] = {}
    for sample in support.scrape(metrics_url, "harbour_http_request_duration_seconds"):
        key = f"{sample.labels.get('method')} {sample.labels.get('route')}"
        total, count = out.get(key, (0.0, 0.0))
        if sample.name.endswith("_sum"):
            out[key] = (total + sample.value, count)
        elif sample.name.endswith("_count"):
            out[key] = (total, count + sample.value)
    return out


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


# --- the peer: node-oidc-provider -----------------------------------------------------------------------


def peer_runs(db: Database, mongo_port: int, count: int, concurrency: int, idle_rate: dict[str, float],
              idle_oplog: float | None, pinning: support.Pinning, mongo_pid: int | None = None,
              mongo_idle_cpu: float = 0.0) -> list[tuple[str, str]]:
    """node-oidc-provider's code flow (bench/peers/oidc-provider/logins.py), in memory and with its MongoDB adapter on
    a database of the stack's own local server: its printed result line (with the provider's CPU per login), and for
    the MongoDB adapter the database operations and the database's CPU per login, counted as for Harbour ID: what the
    idle stack does in the same time subtracted (`mongo_idle_cpu`: the database's CPU seconds per second idle), the
    runner's warm-up and the provider's start-up left in (upper bounds). The runner pins the provider to the
    system-under-test CPU, beside this stack's database, and itself to the load generator's, as this bench does."""
    runner = REPO_ROOT / "bench" / "peers" / "oidc-provider" / "logins.py"
    if not runner.exists():
        return [("oidc-provider", "not run: bench/peers/oidc-provider/logins.py is missing")]
    lines = []
    for adapter in ("memory", "mongodb"):
        before, db_cpu_before, started = db.sample(), mongo_pid and support.process_cpu_s(mongo_pid), time.perf_counter()
        result = subprocess.run([sys.executable, str(runner), "--adapter", adapter, "--logins", str(count),
                                 "--concurrency", str(concurrency),
                                 "--mongo-uri", f"mongodb://127.0.0.1:{mongo_port}/oidc_peer?retryWrites=false"],
                                capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
                                preexec_fn=support.both_cpus(pinning))
        if result.returncode != 0 or not result.stdout.strip():
            lines.append((adapter, f"failed ({result.returncode}): {result.stderr.strip()[-300:]}"))
            continue
        printed = result.stdout.strip().splitlines()
        line = printed[-1]
        if adapter == "mongodb":
            # The runner's own warm-up and start-up are in this count too: an upper bound.
            ops, oplog = per_login(before, db.sample(), idle_rate, idle_oplog, count)
            line += f"; database operations per login ≤ {sum(ops.values()):.1f} (" + ", ".join(
                f"{k} {v:.1f}" for k, v in ops.items() if v >= 0.05) + ")"
            if mongo_pid:
                spent = support.process_cpu_s(mongo_pid) - db_cpu_before - mongo_idle_cpu * (time.perf_counter() - started)
                line += f"; database CPU per login ≤ {spent / count * 1000:.1f} ms"
        # Where the runner put the provider and itself, under the result: the figure is only as fair as that.
        line += "".join(f"\n    {said}" for said in printed if said.startswith(("pinned", "WARNING")))
        lines.append((adapter, line))
    return lines


# --- main -------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logins", type=int, default=300, help="complete logins to time")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3, help="untimed logins first")
    parser.add_argument("--use-running", action="store_true", help="measure the stack `make up` runs")
    parser.add_argument("--no-peers", action="store_true", help="Harbour ID only")
    parser.add_argument("--no-pin", action="store_true",
                        help="leave the processes where the kernel puts them (default: the stack on one CPU, the bench on another)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--profile", action="store_true",
                        help="also list every database operation per login by collection and kind (the database's profiler)")
    parser.add_argument("--dpop", action="store_true",
                        help="logins whose code is exchanged with a DPoP proof and whose token then calls userinfo, next to "
                             "the same with a bearer token, in the same run (no peers, no database counts)")
    parser.add_argument("--runs", type=int, default=2, help="--dpop: rounds of bearer then DPoP; the medians (default 2)")
    args = parser.parse_args()
    if not 1 <= args.logins <= 100_000 or not 1 <= args.concurrency <= 256 or not 1 <= args.runs <= 9:
        parser.error("--logins 1..100000, --concurrency 1..256, --runs 1..9")
    if args.dpop:
        return dpop_main(args)

    with support.bench_stack("logins", use_running=args.use_running) as stack:
        try:
            gateway = stack.config.service_url("gateway")
            db = Database(stack.config.mongo_uri)
            pids = {name: pid for name, pid in stack.status().items() if pid is not None}
            pinning = support.Pinning(None, None) if args.no_pin else support.cpus()
            support.pin(pinning, pids)  # the stack's processes, children and threads
            measured: dict = {}

            def before_timed() -> None:
                settle(db, {k: 0.0 for k in OPS}, timeout_s=15)
                idle_rate, idle_oplog, measured["idle_cpu"] = idle_rates(db, 3.0, pids)
                measured["idle"] = idle_rate, idle_oplog
                if args.profile:
                    db.profile(2)
                measured["db"] = db.sample()
                measured["collections"] = db.by_collection()
                measured["cpu"] = cpu_of(pids)
                measured["started"] = time.perf_counter()
                measured["routes"] = route_means(stack.config.metrics_url("auth"))

            with tempfile.TemporaryDirectory() as folder:
                async def harbour() -> tuple[float, list[float]]:
                    apps = await citizens(stack, Path(folder), args.concurrency)
                    return await run_logins(gateway, apps, args.logins, args.concurrency, args.warmup, before_timed)

                rate, latencies = asyncio.run(harbour())
            cpu_after = cpu_of(pids)
            timed_s = time.perf_counter() - measured["started"]
            routes_after = route_means(stack.config.metrics_url("auth"))
            idle_rate, idle_oplog = measured["idle"]
            settle(db, idle_rate)
            ops, oplog = per_login(measured["db"], db.sample(), idle_rate, idle_oplog, args.logins)
            collections = {ns: (n - measured["collections"].get(ns, 0)) / args.logins for ns, n in db.by_collection().items()}
            profiled = db.profiled(args.logins) if args.profile else []
            peers = [] if args.no_peers else peer_runs(db, stack.config.mongo_port, args.logins, args.concurrency, idle_rate,
                                                       idle_oplog, pinning, pids.get("mongodb"),
                                                       measured["idle_cpu"].get("mongodb", 0.0))
        except BaseException:
            for name in ("auth", "gateway"):
                log = stack.log_dir / f"{name}.log"
                lines = [line for line in log.read_text(errors="replace").splitlines() if '"error"' in line or "Traceback" in line
                         or '"warning"' in line] if log.exists() else []
                print(f"--- {name}.log, last problems:\n" + "\n".join(lines[-8:]), file=sys.stderr)
            raise

    cpu = {name: (cpu_after[name] - measured["cpu"][name]) / args.logins for name in pids}
    # What the processes do idle in the same time (relays and consumers polling, sweeps), shown beside it.
    idle_cpu = sum(measured["idle_cpu"].values()) * timed_s / args.logins
    print(f"complete logins (code + PKCE through the gateway, approved on the phone), concurrency {args.concurrency}, {args.logins} logins")
    print(f"{'Harbour ID':34} {rate:8.1f} logins/s  p50 {statistics.median(latencies) * 1000:6.0f} ms"
          f"  p99 {percentile(latencies, 0.99) * 1000:6.0f} ms" + (f"  ({len(ERRORS)} failed: {ERRORS[0]})" if ERRORS else ""))
    print("  median per step: " + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in STEPS.items()))
    server = []
    for route, (total, count) in routes_after.items():
        before_total, before_count = measured["routes"].get(route, (0.0, 0.0))
        if count - before_count >= args.logins / 2:
            server.append(f"{route} {(total - before_total) / (count - before_count) * 1000:.0f} ms")
    print("  auth's mean time per request: " + ", ".join(server))
    print("  CPU per login: " + ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]))
          + f"; total {sum(cpu.values()) * 1000:.0f} ms (of which the idle stack's own pace {idle_cpu * 1000:.0f} ms)")
    print(f"  database operations per login: {sum(ops.values()):.1f} (" + ", ".join(f"{k} {v:.1f}" for k, v in ops.items())
          + ")" + (f"; oplog entries {oplog:.1f}" if oplog is not None else "; oplog: not kept by this database"))
    # Where they went (the idle stack's leases and polls included: the figure above subtracts them, this one cannot).
    print("  by collection, idle included: " + ", ".join(
        f"{ns} {n:.2f}" for ns, n in sorted(collections.items(), key=lambda kv: -kv[1]) if n >= 0.1))
    for line in profiled:
        print("  " + line)
    peer_rates = {}
    for adapter, line in peers:
        print(f"{'oidc-provider (' + adapter + ')':34} {line}")
        match = re.search(r"logins: ([\d,.]+)/s", line) or re.search(r"([\d,.]+) logins/s", line)
        if match:
            peer_rates[adapter] = float(match.group(1).replace(",", ""))
    for adapter, peer_rate in peer_rates.items():
        print(f"ratio Harbour ID / oidc-provider ({adapter}): {rate / peer_rate:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rate": rate, "p50": statistics.median(latencies), "p99": percentile(latencies, 0.99),
                                         "cpu": cpu, "ops": ops, "oplog": oplog, "peers": peer_rates}, indent=2))
    return 0


def dpop_main(args) -> int:
    """--dpop: logins/s and p50/p99 with DPoP next to without, from the same run on the same stack."""
    print(f"bench/logins.py --dpop — {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: {args.logins} logins per run "
          f"and side, concurrency {args.concurrency}, {args.runs} rounds of bearer then DPoP, each login ending with userinfo",
          flush=True)
    with support.bench_stack("logins", use_running=args.use_running) as stack:
        if not args.no_pin:
            support.pin(support.cpus(), {name: pid for name, pid in stack.status().items() if pid is not None})
        with tempfile.TemporaryDirectory() as folder:
            async def both() -> dict[str, list[support.Result]]:
                apps = await citizens(stack, Path(folder), args.concurrency)
                return await dpop_runs(stack.config.service_url("gateway"), apps, args.logins, args.concurrency,
                                       args.warmup, args.runs)

            results = asyncio.run(both())
    summaries = {name: support.Summary.of(each) for name, each in results.items()}
    what = "complete logins + userinfo with DPoP against bearer (logins/s)"
    print(support.comparison_line(what, summaries["dpop"], "bearer", summaries["bearer"], name="dpop"))
    if ERRORS:
        print(f"  {len(ERRORS)} failed, the first: {ERRORS[0]}")
    if args.json:
        args.json.write_text(json.dumps({name: {"rate": v.rps, "p50_ms": v.p50_ms, "p99_ms": v.p99_ms, "errors": v.errors,
                                                "runs": v.runs} for name, v in summaries.items()}, indent=2))
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())

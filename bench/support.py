"""What every bench shares: a private stack, CPU pinning, a bounded load generator, medians and the comparison line.

Used by bench/tokens.py, bench/gateway.py and the other benches (`from bench.support import ...`, with the
repository root first on sys.path, as each bench puts it):

- `private_stack(...)`: the whole platform (broker, database, services, workers) on free ports with a data folder
  of its own under `.dev/`, rate limits lifted so the bench measures the work and not the limiter; stopped by the
  PIDs in its own PID files, its folder removed.
- `pin(stack, peers)`: the system under test (every process of the stack, found through its PID files, their child
  processes and every thread of each; and the peers' processes) on one CPU, the bench itself (the load generator)
  on another, with `os.sched_setaffinity`; prints what it pinned, and warns when there is only one CPU.
- `run_load(call, ...)`: a closed loop of `concurrency` callers, bounded by a number of requests or a duration;
  counts errors (an unexpected status or a failed connection), gives req/s, p50 and p99.
- `compare(...)`: runs each side `runs` times, interleaved (harbour, peer, harbour, peer...), takes the medians and
  prints one line: `harbour X/s p99 Y ms | peer X/s p99 Y ms | ratio R`.

Loopback only; every loop stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(REPO_ROOT))

# The platform's own rate limits are for callers on the internet; a bench sends everything from 127.0.0.1.
UNLIMITED_GATEWAY = {
    "HARBOUR_GATEWAY_RATE_PER_IP": "1000000", "HARBOUR_GATEWAY_BURST_PER_IP": "1000000",
    "HARBOUR_GATEWAY_RATE_PER_CLIENT": "1000000", "HARBOUR_GATEWAY_BURST_PER_CLIENT": "1000000",
}


# -- figures (pure: tests/unit/test_bench_support.py) ------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Result:
    """One run of one side: answers as expected (`ok`), errors, wall time and each ok answer's latency in seconds."""

    ok: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


@dataclass(frozen=True)
class Summary:
    """The medians of several runs of one side."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # over all runs
    runs: tuple[float, ...]  # each run's req/s

    @classmethod
    def of(cls, results: Sequence[Result]) -> "Summary":
        return cls(
            rps=statistics.median(r.rps for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            errors=sum(r.errors for r in results),
            runs=tuple(r.rps for r in results),
        )


def _rate(rps: float) -> str:
    return f"{rps:,.0f}/s" if rps >= 100 else f"{rps:,.1f}/s"


def side(name: str, summary: Summary) -> str:
    errors = f" ({summary.errors} errors)" if summary.errors else ""
    return f"{name} {_rate(summary.rps)} p50 {summary.p50_ms:.1f} ms p99 {summary.p99_ms:.1f} ms{errors}"


def comparison_line(what: str, harbour: Summary, peer_name: str, peer: Summary, *, name: str = "harbour") -> str:
    """`what: harbour X/s p50 … p99 Y ms | peer X/s … | ratio R` (R = harbour req/s over the peer's; `name` for
    another left side, as `dpop` against `bearer`)."""
    ratio = harbour.rps / peer.rps if peer.rps > 0 else float("nan")
    line = f"{what}: {side(name, harbour)} | {side(peer_name, peer)} | ratio {ratio:.2f}"
    paired = paired_ratios(harbour, peer)
    if len(paired) > 1:
        # On a busy machine the load drifts between runs: each run's ratio to the peer's run beside it says more.
        line += f" (per run {' '.join(f'{r:.2f}' for r in paired)}; median {statistics.median(paired):.2f})"
    return line


def paired_ratios(harbour: Summary, peer: Summary) -> list[float]:
    """Run i of harbour over run i of the peer (they ran one after the other)."""
    return [ours / theirs for ours, theirs in zip(harbour.runs, peer.runs) if theirs > 0]


def cpu_times() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies from /proc/stat."""
    out = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields[:8]]
            idle = values[3] + values[4]  # idle + iowait
            out[int(name[3:])] = (sum(values) - idle, sum(values))
    return out


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """A process's CPU seconds so far (utime + stime from /proc; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def busy_fractions(before: Mapping[int, tuple[int, int]], after: Mapping[int, tuple[int, int]]) -> dict[int, float]:
    """Each CPU's busy share between two `cpu_times()`."""
    shares = {}
    for cpu, (busy, total) in after.items():
        if cpu in before and total > before[cpu][1]:
            shares[cpu] = (busy - before[cpu][0]) / (total - before[cpu][1])
    return shares


# -- DPoP proofs (RFC 9449), as an outside client makes them ----------------------------------------------------


class DPoPKey:
    """One client's DPoP key (ES256, generated by jwcrypto, as an outside client would) and its proofs: a fresh `jti`
    each, `htm`/`htu` naming the request, and at a resource `ath`, the access token's hash (libs/tokens/dpop.py's).
    Used by bench/tokens.py --dpop and bench/logins.py --dpop."""

    def __init__(self) -> None:
        import json

        from jwcrypto import jwk

        self.key = jwk.JWK.generate(kty="EC", crv="P-256")
        self.protected = json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.export_public(as_dict=True)})

    def proof(self, method: str, htu: str, access_token: str | None = None) -> str:
        import json
        import uuid

        from jwcrypto import jws

        claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": htu, "iat": int(time.time())}
        if access_token is not None:
            from libs.tokens.dpop import access_token_hash

            claims["ath"] = access_token_hash(access_token)
        signed = jws.JWS(json.dumps(claims).encode())
        signed.add_signature(self.key, alg="ES256", protected=self.protected)
        return signed.serialize(compact=True)


# -- CPU pinning ---------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return found


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    seen, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.append(current)
            todo += _children(current)
    return seen


def _pin_process(pid: int, cpus: set[int]) -> int:
    """Pin every thread of `pid` (affinity is per thread; threads started later inherit it); return how many."""
    pinned = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            os.sched_setaffinity(int(task.name), cpus)
            pinned += 1
        except (OSError, ValueError):
            pass  # a thread that just ended
    return pinned


@dataclass
class Pinning:
    sut_cpu: int | None
    bench_cpu: int | None

    @property
    def active(self) -> bool:
        return self.sut_cpu is not None


def cpus() -> Pinning:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        print(f"WARNING: only CPU {allowed} available: the system under test and the load generator share it; "
              "figures are not comparable with a pinned run", flush=True)
        return Pinning(None, None)
    return Pinning(allowed[0], allowed[1])


def pin_bench(pinning: Pinning) -> None:
    """The bench process (the load generator) on its own CPU: call before starting anything."""
    if pinning.active:
        _pin_process(os.getpid(), {pinning.bench_cpu})


def both_cpus(pinning: Pinning) -> Callable[[], None] | None:
    """For a bench that runs another as a subprocess (`preexec_fn=`): the child starts with both CPUs again.

    A child inherits its parent's affinity, and a pinned bench runs on the load generator's CPU alone: the child's
    `cpus()` would see one CPU, pin nothing, and its peer would run beside the load generator instead of on the
    system-under-test CPU (bench/logins.py's oidc-provider runs did, until 2026-12-05)."""
    if not pinning.active:
        return None
    wanted = {pinning.sut_cpu, pinning.bench_cpu}
    return lambda: os.sched_setaffinity(0, wanted)


def pin(pinning: Pinning, processes: Mapping[str, int | None]) -> None:
    """Pin the named processes (and their children, every thread) to the system-under-test CPU, and say so."""
    if not pinning.active:
        return
    pin_bench(pinning)
    parts = []
    for name, pid in processes.items():
        if pid is None:
            continue
        tree = _tree(pid)
        threads = sum(_pin_process(p, {pinning.sut_cpu}) for p in tree)
        parts.append(f"{name}={pid}" + (f"+{len(tree) - 1} children" if len(tree) > 1 else "") + f" ({threads} threads)")
    print(f"pinned to CPU {pinning.sut_cpu} (system under test): {', '.join(parts)}", flush=True)
    print(f"pinned to CPU {pinning.bench_cpu} (load generator): bench pid {os.getpid()}", flush=True)


def stack_processes(stack) -> dict[str, int | None]:
    """Every process of a DevStack, from its PID files: broker, database, services, workers."""
    return stack.status()


# -- a private stack -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def private_stack(prefix: str, extra_env: Mapping[str, str] | None = None) -> Iterator:
    """The platform on free ports in a folder of its own; stopped (by PID) and removed on the way out."""
    from libs.devstack import DevStack, StackConfig

    base = REPO_ROOT / ".dev"
    base.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-", dir=base))
    config = StackConfig.free_ports(folder)
    config.extra_env = {**UNLIMITED_GATEWAY, **(extra_env or {})}
    stack = DevStack(config)
    print(f"starting a private stack in {folder} (code from {REPO_ROOT})...", flush=True)
    started = time.monotonic()
    try:
        try:
            stack.up()
        except Exception:
            for log in sorted((folder / "logs").glob("*.log")):
                tail = log.read_text(errors="replace").strip().splitlines()[-15:]
                if any("Error" in line or "Traceback" in line for line in tail):
                    print(f"--- {log.name} (last lines)\n" + "\n".join(tail), file=sys.stderr, flush=True)
            raise
        print(f"stack up in {time.monotonic() - started:.0f} s", flush=True)
        yield stack
    finally:
        stack.down()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def bench_stack(prefix: str, *, use_running: bool = False, extra_env: Mapping[str, str] | None = None) -> Iterator:
    """With use_running, the stack `make up` runs (left as it is); else, or when none runs, a private_stack."""
    if use_running:
        from libs.devstack import load_running_stack

        running = load_running_stack(REPO_ROOT / ".dev")
        if running is not None:
            yield running
            return
    with private_stack(prefix, extra_env) as stack:
        yield stack

def admin_token(stack) -> str:
    return stack.config.service_env()["HARBOUR_ADMIN_TOKEN"]


# -- a process's own figures ---------------------------------------------------------------------------------------

def metric_samples(metrics_text: str, family: str) -> list:
    """The samples of one metric family in a /metrics page (prometheus-client's parser): a gauge's values, a
    histogram's `_sum`, `_count` and `_bucket`s, each a `Sample` with `name`, `labels` and `value`; [] if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    return [sample for metric in text_string_to_metric_families(metrics_text) if metric.name == family
            for sample in metric.samples]


def scrape(metrics_url: str, family: str) -> list:
    """`metric_samples` of what a process's /metrics answers now."""
    import urllib.request

    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        return metric_samples(response.read().decode(), family)


# -- the load generator --------------------------------------------------------------------------------------------

Call = Callable[["aiohttp.ClientSession"], Awaitable[int]]  # noqa: F821  (returns the HTTP status)


def http_call(method: str, url: str, *, headers: Mapping[str, str] | None = None, data=None) -> Call:
    """A request the load generator repeats; returns its status, the body read whole."""

    async def call(session) -> int:
        async with session.request(method, url, headers=headers, data=data) as response:
            await response.read()
            return response.status

    return call


async def run_load(call: Call, *, requests: int | None = None, duration_s: float | None = None,
                   concurrency: int = 16, expect: int = 200, warmup: int = 50,
                   timeout_s: float = 30.0) -> Result:
    """`concurrency` callers repeating `call` until `requests` were sent or `duration_s` passed (whichever is given)."""
    import aiohttp

    if (requests is None) == (duration_s is None):
        raise ValueError("give requests or duration_s")
    result = Result()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        # Warm the connection pool and the servers' caches, unmeasured.
        await asyncio.gather(*(_one(call, session, expect, Result()) for _ in range(min(warmup, concurrency))))
        for _ in range(max(0, warmup - concurrency)):
            await _one(call, session, expect, Result())
        remaining = [requests] if requests is not None else None
        deadline = time.perf_counter() + duration_s if duration_s is not None else None

        async def caller() -> None:
            while True:
                if remaining is not None:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                elif time.perf_counter() >= deadline:
                    return
                await _one(call, session, expect, result)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started
    return result


async def _one(call: Call, session, expect: int, result: Result) -> None:
    started = time.perf_counter()
    try:
        status = await call(session)
    except Exception as error:  # noqa: BLE001 — every failure is counted, none stops the run
        kind = type(error).__name__
    else:
        if status == expect:
            result.ok += 1
            result.latencies.append(time.perf_counter() - started)
            return
        kind = str(status)
    result.errors += 1
    result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1


def run(coro: Awaitable):
    """asyncio.run, on uvloop when it is installed (the load generator must not be the bottleneck)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# Requests each side gets, unmeasured, before its first measured run: node's JIT needs thousands before
# oidc-provider reaches its pace (with 50 its first run was half its third, with 2,000 two thirds), and Python's
# caches warm too.
WARM_UP_REQUESTS = 5000


def measure(what: str, sides: Mapping[str, Call], *, requests: int, concurrency: int, runs: int = 3) -> dict[str, Summary]:
    """Each side warmed up, then `runs` times, interleaved (a, b, a, b...), under the same load; print each run; the
    medians."""
    results: dict[str, list[Result]] = {name: [] for name in sides}
    for call in sides.values():
        run(run_load(call, requests=WARM_UP_REQUESTS, concurrency=concurrency))
    for i in range(runs):
        for name, call in sides.items():
            cpu_before, own_before, wall_before = cpu_times(), time.process_time(), time.perf_counter()
            result = run(run_load(call, requests=requests, concurrency=concurrency))
            busy = busy_fractions(cpu_before, cpu_times())
            own = (time.process_time() - own_before) / (time.perf_counter() - wall_before)
            results[name].append(result)
            kinds = f" errors {result.error_kinds}" if result.errors else ""
            # Whether a CPU was the limit: each CPU's busy share (everyone's work, not only ours) and the bench's own.
            cpus_line = " ".join(f"cpu{n} {share:.0%}" for n, share in sorted(busy.items()))
            print(f"  {what} run {i + 1}/{runs} {name}: {_rate(result.rps)} p50 {result.p50_ms:.1f} ms "
                  f"p99 {result.p99_ms:.1f} ms{kinds} [busy: {cpus_line}; load generator {own:.0%}]", flush=True)
    return {name: Summary.of(each) for name, each in results.items()}


def compare(what: str, harbour: Call, peer_name: str, peer: Call, *, requests: int, concurrency: int,
            runs: int = 3) -> tuple[Summary, Summary]:
    """Harbour and its peer `runs` times, interleaved; print each run and the medians' comparison line."""
    summaries = measure(what, {"harbour": harbour, peer_name: peer}, requests=requests, concurrency=concurrency, runs=runs)
    print(comparison_line(what, summaries["harbour"], peer_name, summaries[peer_name]), flush=True)
    return summaries["harbour"], summaries[peer_name]


def add_load_arguments(parser, *, requests: int, concurrency: int = 16, runs: int = 3) -> None:
    parser.add_argument("--requests", type=int, default=requests, help=f"requests per run and side (default {requests})")
    parser.add_argument("--concurrency", type=int, default=concurrency, help=f"callers at once (default {concurrency})")
    parser.add_argument("--runs", type=int, default=runs, help=f"runs per side; the medians are printed (default {runs})")


def check_load_arguments(parser, args) -> None:
    if not 1 <= args.requests <= 200_000:
        parser.error("--requests must be between 1 and 200000")
    if not 1 <= args.concurrency <= 256:
        parser.error("--concurrency must be between 1 and 256")
    if not 1 <= args.runs <= 9:
        parser.error("--runs must be between 1 and 9")


def header(title: str, args) -> None:
    import libs

    code = Path(libs.__file__).resolve().parents[1]
    if code != REPO_ROOT:
        print(f"WARNING: the platform's code comes from {code}, not {REPO_ROOT}", flush=True)
    print(f"{title} — {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {args.requests} requests per run, "
          f"concurrency {args.concurrency}, median of {args.runs} runs, code at {REPO_ROOT}", flush=True)

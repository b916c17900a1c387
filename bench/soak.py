"""Soak: the chaos bench's steady workload for ten minutes with no fault; errors, latency and memory per minute.

    .venv/bin/python bench/soak.py [--minutes 10]
    make soak

Starts its own private stack on free ports under .dev/soak-*/ (loopback only,
every process stopped by PID at the end), enrols the chaos bench's citizens
and runs its workload lanes (PKCE logins approved on the phone, form fills,
signatures, single and batch notifications, all through the gateway) at the
same steady rate for `--minutes`. Every minute it prints the requests sent,
the errors (connection errors, timeouts, 429 and 5xx), p50 and p99 latency of
the requests that minute, and the resident memory (RSS) of every process of
the stack. At the end: the chaos bench's conservation check of everything
accepted (every loss or duplicate listed by id), and each process's RSS
growth from the end of the first minute (warm-up: imports, pools and caches
fill) to the last — the target is under 10 % for the platform's processes
(the broker and the database hold the data the workload writes, and grow
with it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import chaos  # noqa: E402  (the workload and its conservation check)
from bench import support  # noqa: E402
from libs.devstack import DevStack  # noqa: E402
from libs.devstack.config import SERVICES, WORKERS  # noqa: E402

RSS_GROWTH_LIMIT = 0.10


class TimedHttp(chaos.Http):
    """The chaos bench's HTTP client, remembering when each request ended, how long it took and if it failed."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        super().__init__(base, session)
        self.samples: list[tuple[float, float, bool]] = []  # (monotonic end, seconds, failed)

    async def request(self, method: str, path: str, **kwargs):
        started = time.perf_counter()
        failed = True
        try:
            answer = await super().request(method, path, **kwargs)
            failed = False
            return answer
        finally:
            self.samples.append((time.monotonic(), time.perf_counter() - started, failed))


def rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def soak(stack: DevStack, minutes: int) -> tuple[list[dict], chaos.Phase]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
        http = TimedHttp(stack.config.service_url("gateway"), session)
        _, metadata = await chaos.retry(lambda: http.request("GET", "/.well-known/openid-configuration"))
        bench = chaos.Chaos(stack, http, metadata)
        await bench.setup()
        rows: list[dict] = []
        began = time.monotonic()

        async def sample_every_minute() -> None:
            for minute in range(1, minutes + 1):
                await asyncio.sleep(max(0.0, began + 60 * minute - time.monotonic()))
                window = [s for s in http.samples if began + 60 * (minute - 1) <= s[0] < began + 60 * minute]
                latencies = [s[1] for s in window if not s[2]]
                row = {"minute": minute, "requests": len(window), "errors": sum(s[2] for s in window),
                       "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
                       "p99_ms": percentile(latencies, 0.99) * 1000,
                       "rss": {name: rss_kib(pid) for name, pid in stack.status().items()}}
                rows.append(row)
                chaos.log(f"minute {minute}: {row['requests']} requests, {row['errors']} errors, "
                          f"p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms")

        sampler = asyncio.create_task(sample_every_minute())
        http.samples.clear()
        phase = await bench.phase("none", warm_s=60.0 * minutes - chaos.DOWN_S, after_s=0.0)
        await sampler
        return rows, phase


def report(rows: list[dict], phase: chaos.Phase) -> tuple[str, bool]:
    names = list(rows[0]["rss"])
    lines = ["| minute | requests | errors | p50 ms | p99 ms | " + " | ".join(f"{n} RSS MiB" for n in names) + " |",
             "|---:|---:|---:|---:|---:|" + "---:|" * len(names)]
    for row in rows:
        rss = " | ".join(f"{row['rss'][n] / 1024:.0f}" if row["rss"][n] else "—" for n in names)
        lines.append(f"| {row['minute']} | {row['requests']} | {row['errors']} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {rss} |")
    growth = {}
    for name in names:
        first, last = rows[0]["rss"][name], rows[-1]["rss"][name]
        if first and last:
            growth[name] = (last - first) / first
    lines.append("")
    lines.append("RSS growth from minute 1 to minute {}: ".format(rows[-1]["minute"]) +
                 ", ".join(f"{n} {g:+.1%}" for n, g in growth.items()))
    work = phase.result["work"]
    clean = not work["lost"] and not work["dup"] and not phase.result["lost_events"] and not phase.result["dup_events"]
    lines.append(f"conservation: {'0 lost, 0 duplicated' if clean else 'VIOLATED'} "
                 f"({phase.tally.sent} requests, {sum(work['accepted'].values())} pieces of work accepted, "
                 f"{phase.result['events']} outbox events checked, abandoned journeys: {dict(phase.abandoned) or 'none'})")
    # The broker and the database hold the data the workload writes (the local ones in memory): they grow with
    # it by design. The limit is for the platform's own processes, which keep nothing between requests.
    ours = {n: g for n, g in growth.items() if n in (*SERVICES, *WORKERS)}
    within = all(g < RSS_GROWTH_LIMIT for g in ours.values())
    lines.append(f"memory: {'every platform process grew less than 10 %' if within else 'a platform process grew 10 % or more'}"
                 " (the broker and the database grow with the data they hold)")
    return "\n".join(lines), clean and within


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args()
    if not 2 <= args.minutes <= 60:
        parser.error("--minutes must be between 2 and 60")
    # Its own stack on free ports, the gateway's limits lifted, stopped by PID and removed (bench/support.py).
    with support.private_stack("soak") as stack:
        rows, phase = asyncio.run(soak(stack, args.minutes))
    text, ok = report(rows, phase)
    print()
    print(f"soak {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {args.minutes} minutes")
    print(text)
    # Every loss or duplicate by id, journeys given up, answers no caller should see (the chaos bench's details, all).
    for line in chaos.details(phase, limit=None):
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

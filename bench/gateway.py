"""Gateway overhead: requests/s and p50/p99 latency through the gateway versus straight to the upstream.

    .venv/bin/python bench/gateway.py [--requests 3000] [--concurrency 32]

Starts its own private stack on free ports (or uses the one `make up` runs
with --use-running), sends the same bounded load to
`/.well-known/openid-configuration` directly at auth and then through the
gateway, in the same run, and prints both and their ratio. Loopback only;
stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from libs.devstack import DevStack, StackConfig, load_running_stack  # noqa: E402
from libs.devstack.config import REPO_ROOT  # noqa: E402

PATH = "/.well-known/openid-configuration"


async def load(url: str, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        # Warm the pools, then measure.
        for _ in range(50):
            async with session.get(url) as response:
                await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--use-running", action="store_true", help="measure the stack `make up` runs")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests must be between 1 and 100000")

    running = load_running_stack(REPO_ROOT / ".dev") if args.use_running else None
    stack = running
    temp = None
    if stack is None:
        temp = tempfile.mkdtemp(prefix="bench-gateway-", dir=REPO_ROOT / ".dev" if (REPO_ROOT / ".dev").exists() else None)
        config = StackConfig.free_ports(Path(temp))
        # The bench measures forwarding, not the rate limiter: lift the per-address limit.
        config.extra_env = {"HARBOUR_GATEWAY_RATE_PER_IP": "1000000", "HARBOUR_GATEWAY_BURST_PER_IP": "1000000"}
        stack = DevStack(config)
        print("starting a private stack...", flush=True)
        stack.up()
    try:
        direct = asyncio.run(load(stack.config.service_url("auth") + PATH, args.requests, args.concurrency))
        gateway = asyncio.run(load(stack.config.service_url("gateway") + PATH, args.requests, args.concurrency))
    finally:
        if running is None:
            stack.down()
            shutil.rmtree(temp, ignore_errors=True)
    print(f"GET {PATH}, {args.requests} requests, concurrency {args.concurrency}")
    print(f"{'':10} {'req/s':>10} {'p50 ms':>10} {'p99 ms':>10}")
    for name, figures in (("direct", direct), ("gateway", gateway)):
        print(f"{name:10} {figures['rps']:10.0f} {figures['p50_ms']:10.2f} {figures['p99_ms']:10.2f}")
    print(f"gateway/direct throughput ratio: {gateway['rps'] / direct['rps']:.2f}; "
          f"p50 added: {gateway['p50_ms'] - direct['p50_ms']:.2f} ms; p99 added: {gateway['p99_ms'] - direct['p99_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

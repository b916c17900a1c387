"""Load shedding: twice the sustainable rate at the gateway, then a normal rate, with status counts and latency.

    .venv/bin/python bench/overload.py [--seconds 20] [--factor 2] [--use-running]

Starts its own private stack on free ports (or uses the one `make up` runs
with --use-running; its rate limits then apply) and drives the opening of a
login page through the gateway — `GET /oidc/authorize` with PKCE, which
stores a login transaction in auth's database and renders the QR page:

1. calibration: a closed loop (16 callers) for 8 s measures the sustainable
   rate R (answers/s);
2. overload: requests *sent* at `factor` × R for `--seconds`, whatever the
   answers (an open loop, as independent callers arrive), each waiting up to
   35 s;
3. recovery: R / 2 for 10 s, right after.

Prints, per phase, what was sent, the answers by status (`timeout`: no
answer within 35 s, `error`: the connection failed) and p50/p99 latency of
all answers and of the 200s. A platform that sheds load answers the excess
early with 503 + Retry-After and keeps its 200s fast, then serves the
recovery phase like the calibration. Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import secrets
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support  # noqa: E402

REDIRECT = "http://127.0.0.1:8765/callback"
CALIBRATION_S = 8.0
CALIBRATION_CALLERS = 16
RECOVERY_S = 10.0
ANSWER_WITHIN_S = 35.0


def _authorize_params(client_id: str) -> dict[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return {"client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
            "state": secrets.token_urlsafe(12), "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge, "code_challenge_method": "S256"}


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.ok_latencies: list[float] = []
        self.elapsed = 0.0

    async def call(self, session: aiohttp.ClientSession, url: str, client_id: str) -> None:
        self.sent += 1
        started = time.perf_counter()
        try:
            async with session.get(url, params=_authorize_params(client_id),
                                   timeout=aiohttp.ClientTimeout(total=ANSWER_WITHIN_S)) as response:
                await response.read()
                status = str(response.status)
        except asyncio.TimeoutError:
            self.statuses["timeout"] += 1
            return
        except aiohttp.ClientError:
            self.statuses["error"] += 1
            return
        took = time.perf_counter() - started
        self.statuses[status] += 1
        self.latencies.append(took)
        if status == "200":
            self.ok_latencies.append(took)

    def row(self) -> str:
        def pct(values: list[float], q: float) -> str:
            if not values:
                return "-"
            ordered = sorted(values)
            return f"{ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000:.0f}"

        codes = ", ".join(f"{code}: {count}" for code, count in sorted(self.statuses.items()))
        ok_rate = self.statuses["200"] / self.elapsed if self.elapsed else 0.0
        return (f"{self.name:12} {self.sent:6} {ok_rate:8.1f}  {pct(self.latencies, 0.5):>7} {pct(self.latencies, 0.99):>7}"
                f"  {pct(self.ok_latencies, 0.5):>7} {pct(self.ok_latencies, 0.99):>7}   {codes}")


async def closed_loop(phase: Phase, session, url, client_id, callers: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    started = time.monotonic()

    async def caller() -> None:
        while time.monotonic() < stop:
            await phase.call(session, url, client_id)

    await asyncio.gather(*(caller() for _ in range(callers)))
    phase.elapsed = time.monotonic() - started
    return phase.statuses["200"] / phase.elapsed


async def open_loop(phase: Phase, session, url, client_id, rate: float, seconds: float) -> None:
    """Send at `rate` per second for `seconds`, never waiting for answers; then wait for the last answers."""
    started = time.monotonic()
    tasks = []
    n = 0
    while (due := started + n / rate) < started + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        tasks.append(asyncio.create_task(phase.call(session, url, client_id)))
        n += 1
    await asyncio.gather(*tasks)
    phase.elapsed = time.monotonic() - started


async def run(gateway: str, seconds: float, factor: float) -> list[Phase]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(gateway + "/v1/clients", json={"client_name": "Overload bench", "redirect_uris": [REDIRECT],
                                                               "scope": "openid"}) as response:
            if response.status != 201:
                raise SystemExit(f"could not register a client: {response.status} {await response.text()}")
            client_id = (await response.json())["client_id"]
        url = gateway + "/oidc/authorize"
        for _ in range(20):  # warm the pools
            await Phase("warm").call(session, url, client_id)
        calibration = Phase("calibration")
        rate = await closed_loop(calibration, session, url, client_id, CALIBRATION_CALLERS, CALIBRATION_S)
        print(f"sustainable rate ≈ {rate:.1f}/s; overload at {factor * rate:.1f}/s for {seconds:.0f} s, "
              f"then {rate / 2:.1f}/s for {RECOVERY_S:.0f} s", flush=True)
        overload = Phase(f"overload {factor:g}x")
        await open_loop(overload, session, url, client_id, factor * rate, seconds)
        recovery = Phase("recovery")
        await open_loop(recovery, session, url, client_id, rate / 2, RECOVERY_S)
    return [calibration, overload, recovery]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the overload phase (at most 120)")
    parser.add_argument("--factor", type=float, default=2.0, help="overload rate as a multiple of the sustainable rate")
    parser.add_argument("--use-running", action="store_true", help="drive the stack `make up` runs")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120 or not 1 <= args.factor <= 5:
        parser.error("--seconds must be within 1..120 and --factor within 1..5")

    # A private stack: one bench client on 127.0.0.1 stands for many callers, so the gateway's per-address limit is
    # lifted (bench/support.py). Not pinned: the calibration measures what the stack sustains as it runs.
    with support.bench_stack("overload", use_running=args.use_running) as stack:
        phases = asyncio.run(run(stack.config.service_url("gateway"), args.seconds, args.factor))
    print("GET /oidc/authorize through the gateway (latency in ms; ok/s: 200s per second)")
    print(f"{'phase':12} {'sent':>6} {'ok/s':>8}  {'p50':>7} {'p99':>7}  {'200 p50':>7} {'200 p99':>7}   answers")
    for phase in phases:
        print(phase.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())

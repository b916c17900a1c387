"""Growth: tokens/s and logins/s on a fresh stack, then again after storing 10,000 logins and 1,000 clients.

    .venv/bin/python bench/growth.py [--stored-logins 10000] [--stored-clients 1000] [--tokens 3000]
                                     [--logins 200] [--concurrency 8] [--store-concurrency 8] [--runs 3]

Starts a private stack on free ports (bench/support.py: its own folder under .dev/, rate limits lifted,
stopped by PID and removed at the end), pins it to one CPU and this process, the load generator, to the
other, and measures, the same way before and after the data is stored:

- client_credentials tokens straight at auth (bench/tokens.py's agency client and request), `--runs` runs
  of `--tokens` requests at `--concurrency` 16, median;
- complete code + PKCE logins through the gateway approved on the phone (bench/logins.py's `Login` flow and
  citizens), `--logins` at `--concurrency`.

Between the two it stores what a year of a small deployment leaves behind, through the platform's own APIs:
`--stored-clients` relying parties registered through POST /v1/clients (at most 8 at once, a 503 sent again; each a client document, its
registration events and every consumer's record of them) and `--stored-logins` complete logins through the
real flow at `--store-concurrency`, the stack on every CPU meanwhile (each the login, its prompt, code, session, tokens' jtis, the outbox's
events and the consumers' records: every document a login leaves, with its TTL, as in production). Then it
prints both measurements and the ratio after/fresh (goal, issue 17: within 10 %, i.e. ≥ 0.90).

It measures twice after storing: right after, and again once the idle stack has used no more CPU than it did fresh
(+5 points) for a minute and the local broker's retention has passed since the last stored login (`--settle-max`
seconds at most; each 20 s window printed). In between the stack finishes what the storing left behind: each stored
login's short-lived documents (the login, its proof nonces, the consumers' records...) expire minutes after it and
are removed by the local database's sweep every 60 s, and the local broker drops events older than its retention
(five minutes: this bench sets HARBOUR_KAFKA_RETENTION_CAP_MS=300000 for its stack, the dev stack's default is off;
docs/operations.md, "The local broker's retention": its cost grows with what it keeps, a Kafka broker's does not). So right after 10,000 logins the measurement shares the CPU with both; settled,
only the data that stays is left. The broker's data file is printed with each measurement.

**A fresh twin, measured in the same minutes.** This host's speed drifts by a third over minutes (a fixed Python
loop took 1.9-2.6 s within one minute), so a ratio against the measurement taken 15 minutes earlier says as much
about the host as about the stack. A second private stack, identical and never grown, runs beside the first (pinned
to the same CPU, idle while the other is measured), and after storing the two are measured in turn, twin - grown -
twin - ... (`--rounds` grown measurements, 3 by default, each once both stacks are back to their idle CPU); each
grown measurement is divided by the mean of the twin's on either side, and the goal is read from the median of
those ratios. Two identical stacks, nothing stored, came out 0.89-1.26 from single pairs (2026-12-03): one pair
is not enough. The ratio against the grown stack's own fresh measurement is printed too.
Loopback only; bounded; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import logins, support  # noqa: E402
from bench.tokens import TOKEN_FORM, register_agency  # noqa: E402


def measure(stack, apps, client: tuple[str, str], args) -> dict[str, support.Summary | tuple[float, float, int]]:
    auth, gateway = stack.config.service_url("auth"), stack.config.service_url("gateway")
    basic = {"Authorization": aiohttp.encode_basic_auth(*client)}
    call = support.http_call("POST", auth + "/oidc/token", headers=basic, data=TOKEN_FORM)
    tokens = support.Summary.of([support.run(support.run_load(call, requests=args.tokens, concurrency=16))
                                 for _ in range(args.runs)])
    failed_before = len(logins.ERRORS)
    # No untimed logins first: the citizens and the client are warm (a warm-up failing under load would end the run).
    rate, latencies = support.run(logins.run_logins(gateway, apps, args.logins, args.concurrency, warmup=0))
    for error in sorted(set(logins.ERRORS[failed_before:]))[:3]:  # why, not only how many
        print(f"  a login failed: {error}", flush=True)
    return {"tokens": tokens, "logins": (rate, statistics.median(latencies) if latencies else 0.0,
                                         len(logins.ERRORS) - failed_before)}


async def store_clients(gateway: str, count: int, concurrency: int) -> float:
    """`count` relying parties through the registration API (bench/logins.py's registration); seconds taken."""
    started = time.perf_counter()
    remaining = iter(range(count))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker() -> None:
            for _ in remaining:
                for attempt in range(30):  # a registration shed under this load (503) is sent again
                    try:
                        await logins.register_client(session, gateway)
                        break
                    except RuntimeError as exc:
                        if "answered 503" not in str(exc) or attempt == 29:
                            raise
                        RETRIED.append(str(exc))
                        await asyncio.sleep(1.0)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, 8))))
    return time.perf_counter() - started


RETRIED: list[str] = []  # registrations answered 503 (the database's deadline) and sent again


def store_logins(gateway: str, apps, count: int, concurrency: int) -> tuple[float, int, int]:
    """`count` complete logins through the real flow (bench/logins.py), failed ones made up for (at most 3x `count`
    attempts; a failed login leaves its own documents too); (seconds taken, completed, failed)."""
    started = time.perf_counter()
    failed_before = len(logins.ERRORS)
    completed = 0
    while completed < count and completed + len(logins.ERRORS) - failed_before < 3 * count:
        attempted = count - completed
        failed = len(logins.ERRORS)
        support.run(logins.run_logins(gateway, apps, attempted, concurrency, warmup=0))
        completed += attempted - (len(logins.ERRORS) - failed)
    return time.perf_counter() - started, completed, len(logins.ERRORS) - failed_before


def spread(pinning: support.Pinning, processes) -> None:
    """Let the stack's processes (and their children and threads) run on every CPU again."""
    if pinning.active:
        every = set(os.sched_getaffinity(0)) | {pinning.sut_cpu, pinning.bench_cpu}
        for pid in filter(None, processes.values()):
            for process in support._tree(pid):
                support._pin_process(process, every)


def line(what: str, figures: dict) -> str:
    rate, p50, failed = figures["logins"]
    return (f"{what}: tokens straight at auth {support.side('', figures['tokens']).strip()} | "
            f"logins {rate:.1f}/s p50 {p50 * 1000:.0f} ms" + (f" ({failed} failed)" if failed else ""))


def main() -> int:
    # The local broker keeps five minutes of each event topic for this bench (docs/operations.md, "The local broker's
    # retention"): its cost grows with what it keeps, a Kafka broker's does not. Read by the private stacks' config.
    os.environ.setdefault("HARBOUR_KAFKA_RETENTION_CAP_MS", "300000")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stored-logins", type=int, default=10_000)
    parser.add_argument("--stored-clients", type=int, default=1_000)
    parser.add_argument("--tokens", type=int, default=3000, help="token requests per run")
    parser.add_argument("--runs", type=int, default=3, help="token runs (median)")
    parser.add_argument("--logins", type=int, default=200, help="timed logins per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="of the timed logins")
    parser.add_argument("--store-concurrency", type=int, default=8, help="of the stored logins and registrations")
    parser.add_argument("--rounds", type=int, default=3,
                        help="grown measurements per phase, each between two of the fresh twin's")
    parser.add_argument("--settle-max", type=float, default=1800.0,
                        help="seconds to wait at most, after the first measurement, for the stack to be as quiet as fresh")
    args = parser.parse_args()
    if not (0 <= args.stored_logins <= 100_000 and 0 <= args.stored_clients <= 10_000 and 1 <= args.tokens <= 100_000
            and 1 <= args.runs <= 9 and 1 <= args.logins <= 10_000 and 1 <= args.concurrency <= 256
            and 1 <= args.store_concurrency <= 256 and 0 <= args.settle_max <= 7200 and 1 <= args.rounds <= 9):
        parser.error("counts out of range")

    pinning = support.cpus()
    support.pin_bench(pinning)
    print(f"bench/growth.py: tokens {args.runs}x{args.tokens} at 16, logins {args.logins} at {args.concurrency}; "
          f"storing {args.stored_clients} clients and {args.stored_logins} logins at {args.store_concurrency}", flush=True)
    with (support.private_stack("growth") as stack, support.private_stack("growth-twin") as twin,
          tempfile.TemporaryDirectory() as folder):
        grown_side, fresh_side = (Side(stack, pinning, Path(folder) / "grown", args),
                                  Side(twin, pinning, Path(folder) / "twin", args))
        idle_share = grown_side.idle_share
        print(f"idle stack, fresh: {idle_share:.0%} of its CPU", flush=True)
        fresh = grown_side.measure()
        print(line("fresh", fresh) + broker_file(stack), flush=True)

        # Storing is not measured: the stack may use every CPU meanwhile (pinned again before measuring).
        spread(pinning, support.stack_processes(stack))
        gateway = stack.config.service_url("gateway")
        clients_s = support.run(store_clients(gateway, args.stored_clients, args.store_concurrency))
        print(f"stored {args.stored_clients} clients in {clients_s:.0f} s"
              + (f" ({len(RETRIED)} answered 503 and sent again)" if RETRIED else ""), flush=True)
        logins_s, completed, failed = store_logins(gateway, grown_side.apps, args.stored_logins, args.store_concurrency)
        print(f"stored {completed} complete logins in {logins_s:.0f} s ({completed / logins_s:.1f}/s"
              + (f"; {failed} more failed" if failed else "") + ")", flush=True)

        stored_at = time.monotonic()
        support.pin(pinning, support.stack_processes(stack))
        grown, twin_grown, *grown_ratios = side_by_side(grown_side, fresh_side, args.rounds)
        print(line("right after storing", grown) + broker_file(stack), flush=True)
        settled_after = settle(stack, idle_share, args.settle_max, not_before=stored_at + broker_retention_s(stack))
        settled, twin_settled, *settled_ratios = side_by_side(grown_side, fresh_side, args.rounds)
        print(line("settled", settled) + broker_file(stack), flush=True)
    stored = (f"{completed:,} complete logins" + (f" (and {failed:,} failed)" if failed else "")
              + f" and {args.stored_clients:,} clients")
    print(line("fresh", fresh))
    print(line(f"right after {stored}", grown))
    print(line("  its fresh twin, same minutes (median)", twin_grown))
    print(line(f"{settled_after:.0f} s later, the stack as quiet as fresh"
               if settled_after is not None else f"{args.settle_max:.0f} s later, the stack still busier than fresh", settled))
    print(line("  its fresh twin, same minutes (median)", twin_settled))
    for what, figures, (token_ratios, login_ratios) in (("right after", grown, grown_ratios),
                                                         ("settled", settled, settled_ratios)):
        print(f"ratio {what}/fresh: against its fresh twin in the same minutes, median of {len(token_ratios)}: "
              f"tokens {statistics.median(token_ratios):.2f} ({' '.join(f'{r:.2f}' for r in token_ratios)}), "
              f"logins {statistics.median(login_ratios):.2f} ({' '.join(f'{r:.2f}' for r in login_ratios)}) "
              f"(goal ≥ 0.90); earlier on the same stack: " + ratios(figures, fresh))
    return 0


class Side:
    """One of the two stacks of the run: an agency client, the citizens' phones, and how to measure it."""

    def __init__(self, stack, pinning: support.Pinning, folder: Path, args) -> None:
        folder.mkdir()
        support.pin(pinning, support.stack_processes(stack))
        gateway = stack.config.service_url("gateway")
        self.stack, self.args = stack, args
        self.client = support.run(register_agency(gateway, support.admin_token(stack)))
        self.apps = support.run(logins.citizens(stack, folder, max(args.concurrency, args.store_concurrency)))
        self.idle_share = stack_share(stack, WINDOW_S)

    def measure(self) -> dict:
        return measure(self.stack, self.apps[:self.args.concurrency], self.client, self.args)


def side_by_side(grown: Side, twin: Side, rounds: int) -> tuple[dict, dict, list[float], list[float]]:
    """The grown stack and its fresh twin measured in the same minutes, twin - grown - twin - grown ... - twin
    (`rounds` grown measurements), both pinned to the same CPU with the other idle beside it: the host's speed,
    which drifts by a third over minutes on this machine, moves both alike. Each grown measurement is divided by the
    mean of the twin's measurements on either side of it; (grown's median figures, twin's median figures, the
    token ratios, the login ratios)."""
    twins = [quiet_then(twin, grown)]
    print("  " + line("twin", twins[0]), flush=True)
    growns = []
    for _ in range(rounds):
        growns.append(quiet_then(grown, twin))
        print("  " + line("grown", growns[-1]), flush=True)
        twins.append(quiet_then(twin, grown))
        print("  " + line("twin", twins[-1]), flush=True)
    token_ratios = [g["tokens"].rps / ((a["tokens"].rps + b["tokens"].rps) / 2)
                    for g, a, b in zip(growns, twins, twins[1:])]
    login_ratios = [g["logins"][0] / ((a["logins"][0] + b["logins"][0]) / 2)
                    for g, a, b in zip(growns, twins, twins[1:])]
    return median_figures(growns), median_figures(twins), token_ratios, login_ratios


def median_figures(measurements: list[dict]) -> dict:
    """Several measurements of one stack as one: each figure's median, the failures summed."""
    tokens = [m["tokens"] for m in measurements]
    logins = [m["logins"] for m in measurements]
    return {"tokens": support.Summary(rps=statistics.median(t.rps for t in tokens),
                                      p50_ms=statistics.median(t.p50_ms for t in tokens),
                                      p99_ms=statistics.median(t.p99_ms for t in tokens),
                                      errors=sum(t.errors for t in tokens), runs=tuple(r for t in tokens for r in t.runs)),
            "logins": (statistics.median(rate for rate, _, _ in logins), statistics.median(p50 for _, p50, _ in logins),
                       sum(failed for _, _, failed in logins))}


def quiet_then(side: Side, other: Side, most_s: float = 60.0) -> dict:
    """Measure `side` once both stacks have finished the work the last measurement left them (the events of its
    logins, handled after they answered): each at most 5 points of a CPU over its idle share, in 2 s windows."""
    started = time.monotonic()
    while time.monotonic() - started < most_s:
        if all(stack_share(s.stack, 2.0) <= s.idle_share + 0.05 for s in (side, other)):
            break
    return side.measure()


def ratios(figures: dict, reference: dict) -> str:
    token_ratio = figures["tokens"].rps / reference["tokens"].rps if reference["tokens"].rps else float("nan")
    login_ratio = figures["logins"][0] / reference["logins"][0] if reference["logins"][0] else float("nan")
    return f"tokens {token_ratio:.2f}, logins {login_ratio:.2f}"


# The stack's own CPU, measured over windows this long while nothing is sent to it.
WINDOW_S = 20.0


def stack_share(stack, seconds: float) -> float:
    """The share of one CPU the whole stack used over `seconds` with no load (its background work)."""
    # Every process of the stack with its children (signing's sandbox workers), as the pinning counts them.
    processes = [process for pid in support.stack_processes(stack).values() if pid for process in support._tree(pid)]
    before = sum(map(support.process_cpu_s, processes))
    time.sleep(seconds)
    return (sum(map(support.process_cpu_s, processes)) - before) / seconds


def settle(stack, idle_share: float, most_s: float, not_before: float) -> float | None:
    """Wait until the idle stack's CPU is back to its fresh level (+5 points) and the monotonic time `not_before` has
    come, printing each window: the work the storing left behind (backlogs, and the database removing what expired -
    each stored login's short-lived documents expire minutes after it, in the local database's sweep every 60 s) and
    the broker's retention (see broker_retention_s). Seconds waited, or None."""
    started, quiet = time.monotonic(), 0
    while time.monotonic() - started < most_s:
        share = stack_share(stack, WINDOW_S)
        print(f"  idle stack: {share:.0%} of its CPU ({time.monotonic() - started:.0f} s)", flush=True)
        quiet = quiet + 1 if share <= idle_share + 0.05 else 0
        # Quiet for a whole sweep interval of the local database, and the stored events past the broker's retention.
        if quiet * WINDOW_S >= 60 and time.monotonic() >= not_before:
            return time.monotonic() - started
    return None


def broker_retention_s(stack) -> float:
    """How long after the last stored login the local broker may still keep its events: the stack's retention cap and
    one more segment (libs/events/topics.py topic_configs: a fifth of the cap). 0 without a cap."""
    return stack.config.kafka_retention_cap_ms * 1.2 / 1000


def broker_file(stack) -> str:
    """The local broker's data file: it rewrites all it keeps there every ~2 s while written to."""
    path = Path(stack.config.dev_dir) / "kafka" / "kafka.json"
    return f" | broker's file {path.stat().st_size / 1e6:.1f} MB" if path.exists() else ""


if __name__ == "__main__":
    sys.exit(main())

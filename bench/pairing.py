"""Adding a phone: what the new phone asks of the platform while the citizen types the code and approves it.

    .venv/bin/python bench/pairing.py [--pairings 4] [--think 4] [--use-running]

Starts a private stack on free ports (or uses the one `make up` runs with --use-running), enrols a citizen at a
kiosk with a first phone, then adds twice `--pairings` new phones to that account, one after another, through the gateway:
the new phone starts a pairing, the citizen takes `--think` seconds to type its code on the old phone, and as long
again to approve the prompt there. Meanwhile the new phone waits for its pairing in one of two ways (`--pairings` each),
alternating pairing by pairing so both meet the same machine:

- polling: `GET /v1/devices/pairings/{id}` every 0.5 s, as the reference app did before `?wait=`;
- held: the same with `?wait=20` (auth holds each question until the pairing moves: claimed, bound), as it does now.

Each step takes the citizen a random time between half and one and a half `--think`, so the approval meets the
polling phone at any point of its pace. For each way it prints the new phone's questions per pairing and how long
after the old phone had its approval's answer the new phone knew it was bound (median and worst; negative: it knew
before the old phone did):

    pairing, polling every 0.5 s: 17.0 questions per pairing; bound known 212 ms after the approval (worst 480 ms) ...
    pairing, held (?wait=20): 2.0 questions per pairing; bound known -3 ms after the approval (worst 5 ms) ...

Loopback only; bounded; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support  # noqa: E402
from bench.logins import citizens  # noqa: E402
from clients.citizen_app import CitizenApp, Profile  # noqa: E402
from libs.devstack import DevStack  # noqa: E402

POLL_S = 0.5  # the reference app's pace before ?wait=
ENDED = ("bound", "denied", "expired")


class CountingApp(CitizenApp):
    """The new phone, counting its questions after its pairing."""

    questions = 0

    async def pairing_status(self, wait_s: int = 0):
        self.questions += 1
        return await super().pairing_status(wait_s=wait_s)


async def polled(app: CountingApp) -> float:
    """Until the pairing ends, asking every POLL_S; when it learnt the end (monotonic)."""
    while (await app.pairing_status())["status"] not in ENDED:
        await asyncio.sleep(POLL_S)
    return time.monotonic()


async def held(app: CountingApp) -> float:
    status = await app.finish_pairing(timeout_s=120)
    assert status["status"] == "bound", status
    return time.monotonic()


async def one_pairing(gateway: str, folder: Path, old: CitizenApp, index: int, think_s: float, way) -> tuple[int, float]:
    new = CountingApp(Profile(gateway_url=gateway), folder / f"new-{index}.json")
    started = await new.start_pairing(f"bench-tablet-{index}")
    waiting = asyncio.ensure_future(way(new))
    await asyncio.sleep(random.uniform(0.5, 1.5) * think_s)  # the citizen types the code on the old phone
    claimed = await old.claim_pairing(started["code"])
    await asyncio.sleep(random.uniform(0.5, 1.5) * think_s)  # ... compares the matching codes, and approves
    await old.approve(claimed["approval_id"])
    approved_at = time.monotonic()
    learnt_at = await asyncio.wait_for(waiting, 60)
    return new.questions, learnt_at - approved_at


WAYS = {"polling every 0.5 s": polled, "held (?wait=20)": held}


def main(args: argparse.Namespace) -> None:
    with support.bench_stack("pairing", use_running=args.use_running) as stack, tempfile.TemporaryDirectory() as tmp:
        support.run(pairings(args, stack, Path(tmp)))


async def pairings(args: argparse.Namespace, stack: DevStack, folder: Path) -> None:
    figures: dict[str, dict[str, list[float]]] = {name: {"questions": [], "late": []} for name in WAYS}
    gateway = stack.config.service_url("gateway")
    [old] = await citizens(stack, folder, 1)  # enrolled at a kiosk, its first phone bound
    for index in range(args.pairings * len(WAYS)):
        name = list(WAYS)[index % len(WAYS)]
        questions, late_s = await one_pairing(gateway, folder, old, index, args.think, WAYS[name])
        figures[name]["questions"].append(questions)
        figures[name]["late"].append(late_s * 1000)
        print(f"  pairing {index + 1} {name}: {questions} questions, bound known {late_s * 1000:.0f} ms after the approval",
              flush=True)
    for name, got in figures.items():
        print(f"pairing, {name}: {statistics.mean(got['questions']):.1f} questions per pairing; bound known "
              f"{statistics.median(got['late']):.0f} ms after the approval (worst {max(got['late']):.0f} ms) "
              f"({len(got['questions'])} pairings, about {args.think:g} s to type the code and as long to approve)", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairings", type=int, default=4, help="pairings per way (default 4)")
    parser.add_argument("--think", type=float, default=4.0, help="seconds the citizen takes per step (default 4)")
    parser.add_argument("--use-running", action="store_true", help="measure the stack `make up` runs")
    arguments = parser.parse_args()
    if not 1 <= arguments.pairings <= 50 or not 0 <= arguments.think <= 60:
        parser.error("--pairings 1-50, --think 0-60")
    main(arguments)

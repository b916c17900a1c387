"""Idle memory of every Python service process: VmRSS, RssAnon and RssFile once the stack has been up a while;
and the idle stack's own CPU, every process's, broker and database included.

    .venv/bin/python bench/memory.py [--settle 15] [--idle-window 20] [--use-running] [--imports]

Starts a private stack on free ports (bench/support.py's bench_stack; or measures the one `make up` runs with
--use-running), waits --settle seconds after every process answered /readyz, and prints one line per process
from /proc/<pid>/status (the kernel's kB are KiB; printed in MiB, written MB as in docs/operations.md's table):

    memory gateway pid 1234: VmRSS 61.2 MB RssAnon 47.0 MB RssFile 14.2 MB (goal <= 70 MB: met)

then one summary line. The broker and the database are not ours to cut and are left out. The platform's modules are
byte-compiled at the services' level (`python -OO`) before they start, as every stack's start does
(libs/devstack/bytecode.py, into the git-ignored __pycache__ folders), as in an installed image.
Then, over --idle-window seconds with nothing asked of the stack, each process's CPU (utime + stime from /proc/<pid>/stat, its children's
included) in ms per second, and their total as a share of one core — what a benchmark pinning the whole stack to one
core loses before its first request (0 skips it):

    idle cpu auth: 8.1 ms per second
    idle cpu summary ...: total 52 ms per second (5.2 % of one core): kafka 1.9, mongodb 16.0, ...

--imports (no stack): for each process, in a fresh interpreter started as the service starts (lean start, then
its module imported and its app built, nothing served), the RSS after that, the top-level packages whose loading
grew the process's anonymous memory most (each module's own growth, what it imported subtracted, as
`python -X importtime` does for time) and which of the heavy optional packages are in sys.modules — where a
process's memory goes at start.

Loopback only; stops what it started.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support  # noqa: E402
from libs.devstack.config import SERVICES, WORKERS  # noqa: E402
from libs.devstack.bytecode import compile_platform  # noqa: E402

GOAL_MB = 70.0
FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
# The process name and the module its entry point imports (as `python -m` runs it).
ENTRY = {**{name: f"services.{name}.app" for name in SERVICES}, **WORKERS}
HEAVY = ("pyhanko", "asn1crypto", "opentelemetry", "PIL", "segno", "pymongo", "cryptography", "pydantic",
         "aiokafka", "pkcs11", "rich", "greenlet", "jinja2", "jsonschema", "yaml")


def status_kb(pid: int) -> dict[str, int]:
    """The memory fields of /proc/<pid>/status, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in FIELDS:
            values[key] = int(rest.split()[0])
    return values


def pss_kb(pid: int) -> int:
    for line_ in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line_.startswith("Pss:"):
            return int(line_.split()[1])
    return 0


def command(pid: int, parent: int) -> str:
    """A short name: multiprocessing's forkserver, a worker forked from it (same command line), or the command."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    if "forkserver" in text:
        return "forkserver" if ppid(pid) == parent else "sandbox worker"
    return text[:40]


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def mb(kb: int) -> float:
    """/proc's "kB" are KiB: MiB, the unit of docs/operations.md's table (as bench/soak.py prints)."""
    return kb / 1024


def line(name: str, pid: int, values: dict[str, int]) -> str:
    rss = mb(values["VmRSS"])
    verdict = "met" if rss <= GOAL_MB else "NOT met"
    return (f"memory {name} pid {pid}: VmRSS {rss:.1f} MB RssAnon {mb(values['RssAnon']):.1f} MB "
            f"RssFile {mb(values['RssFile']):.1f} MB (goal <= {GOAL_MB:.0f} MB: {verdict})")


def measure_stack(args) -> int:
    names = [*SERVICES, *WORKERS]
    extra = dict(pair.split("=", 1) for pair in args.env)
    with support.bench_stack("memory", use_running=args.use_running, extra_env=extra) as stack:
        print(f"waiting {args.settle:.0f} s after ready...", flush=True)
        time.sleep(args.settle)
        pids = stack.status()
        rows = {}
        for name in names:
            pid = pids.get(name)
            if pid is None:
                print(f"memory {name}: not running", flush=True)
                continue
            rows[name] = status_kb(pid)
            print(line(name, pid, rows[name]), flush=True)
            # Processes a service starts itself (signing's forkserver and its idle parsing workers): they share
            # most pages with their parent, so their proportional share (Pss) is printed beside VmRSS.
            for child in support._tree(pid)[1:]:
                try:
                    values = status_kb(child)
                    print(f"  {line(f'{name} child {command(child, pid)}', child, values)} Pss {mb(pss_kb(child)):.1f} MB",
                          flush=True)
                except OSError:
                    pass  # ended meanwhile
        if args.idle_window > 0:
            idle_cpu(stack.status(), args.idle_window)
    worst = max(rows, key=lambda n: rows[n]["VmRSS"]) if rows else None
    met = bool(rows) and len(rows) == len(names) and all(mb(v["VmRSS"]) <= GOAL_MB for v in rows.values())
    if worst is not None:
        print(f"memory summary {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: "
              + ", ".join(f"{n} {mb(v['VmRSS']):.0f}" for n, v in rows.items())
              + f" MB; largest {worst}; goal <= {GOAL_MB:.0f} MB per process: {'met' if met else 'NOT met'}", flush=True)
    return 0 if met else 1


def idle_cpu(pids: dict[str, int | None], window_s: float) -> None:
    """Each process's CPU over `window_s` of an idle stack (its children's too: signing's forkserver and workers)."""
    trees = {name: support._tree(pid) for name, pid in pids.items() if pid}

    def cpu() -> dict[str, float]:
        return {name: sum(support.process_cpu_s(p) for p in tree) for name, tree in trees.items()}

    before, started = cpu(), time.monotonic()
    time.sleep(window_s)
    after, elapsed = cpu(), time.monotonic() - started
    per_s = {name: (after[name] - before[name]) / elapsed * 1000 for name in trees}
    for name, ms in per_s.items():
        print(f"idle cpu {name}: {ms:.1f} ms per second", flush=True)
    total = sum(per_s.values())
    print(f"idle cpu summary {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} over {elapsed:.0f} s: total "
          f"{total:.0f} ms per second ({total / 10:.1f} % of one core): "
          + ", ".join(f"{name} {ms:.1f}" for name, ms in per_s.items()), flush=True)


PROBE = r"""
import json, os, sys
PAGE = os.sysconf("SC_PAGE_SIZE")

def anon():
    with open("/proc/self/statm") as f:
        fields = f.read().split()
    return (int(fields[1]) - int(fields[2])) * PAGE  # resident minus file-backed: the process's own memory

# Each module's own share of the growth in anonymous memory while it loads (what its imports added subtracted),
# as -X importtime does for time: importlib's _load_unlocked wrapped (looked up by name on every import).
import _frozen_importlib as bootstrap
own, stack = {}, []
original = bootstrap._load_unlocked

def measured(spec):
    stack.append(0)
    before = anon()
    try:
        return original(spec)
    finally:
        grown = anon() - before
        children = stack.pop()
        own[spec.name] = own.get(spec.name, 0) + grown - children
        if stack:
            stack[-1] += grown

bootstrap._load_unlocked = measured
from libs.lean_start import start_lean
start_lean()
import importlib
module = importlib.import_module(sys.argv[1])
factory = getattr(module, "create_app", None)
if factory is not None:
    before = anon()
    try:
        factory()
    except Exception as exc:  # a factory that needs what the probe has not got: the imports are what counts
        print("factory not built:", type(exc).__name__, exc, file=sys.stderr)
    own["(create_app)"] = own.get("(create_app)", 0) + anon() - before
bootstrap._load_unlocked = original
by_package = {}
for name, grown in own.items():
    top = name.split(".")[0]
    if top in ("libs", "services"):
        top = "harbour:" + ".".join(name.split(".")[:2])
    by_package[top] = by_package.get(top, 0) + grown
status = {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in open("/proc/self/status")) if k in ("VmRSS", "RssAnon", "RssFile")}
heavy = sorted(n for n in sys.argv[2].split(",") if sys.modules.get(n) is not None)
print(json.dumps({"status": status, "by_package": by_package, "modules": len(sys.modules), "heavy": heavy}))
"""


def measure_imports(args) -> int:
    from libs.devstack import StackConfig
    import tempfile

    # The settings a service reads at build time: a throwaway stack config's environment (nothing is started, so
    # nothing compiles the platform at the services' level but this).
    compile_platform()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        env = {**__import__("os").environ, **StackConfig.free_ports(Path(folder)).service_env()}
        for name, module in ENTRY.items():
            out = subprocess.run([sys.executable, "-c", PROBE, module, ",".join(HEAVY)], cwd=support.REPO_ROOT,
                                 capture_output=True, text=True, timeout=120, env=env)
            if out.returncode != 0:
                print(f"imports {name}: probe failed\n{out.stderr[-2000:]}", flush=True)
                continue
            data = json.loads(out.stdout.strip().splitlines()[-1])
            top = sorted(data["by_package"].items(), key=lambda kv: -kv[1])[:args.top]
            s = data["status"]
            print(f"imports {name} ({module}): VmRSS {mb(s['VmRSS']):.1f} MB RssAnon {mb(s['RssAnon']):.1f} MB "
                  f"RssFile {mb(s['RssFile']):.1f} MB, {data['modules']} modules; heavy loaded: "
                  f"{', '.join(data['heavy']) or 'none'}", flush=True)
            print("    anonymous memory by package: " + ", ".join(f"{p} {b / 1e6:.1f}" for p, b in top) + " MB", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to wait after ready (default 15)")
    parser.add_argument("--idle-window", type=float, default=20.0,
                        help="seconds over which the idle stack's CPU is measured after the memory (default 20; 0: not)")
    parser.add_argument("--use-running", action="store_true", help="measure the stack `make up` runs, if one does")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for every process of the private stack (repeatable)")
    parser.add_argument("--imports", action="store_true", help="where each process's memory goes at import (no stack)")
    parser.add_argument("--top", type=int, default=12, help="packages listed per process with --imports (default 12)")
    args = parser.parse_args()
    if any("=" not in pair for pair in args.env):
        parser.error("--env takes NAME=VALUE")
    if not 0 <= args.settle <= 600:
        parser.error("--settle must be between 0 and 600")
    if not 0 <= args.idle_window <= 600:
        parser.error("--idle-window must be between 0 and 600")
    return measure_imports(args) if args.imports else measure_stack(args)


if __name__ == "__main__":
    sys.exit(main())

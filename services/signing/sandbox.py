"""Untrusted parsing in worker processes with CPU-time, memory and wall-clock limits.

A PDF (or CMS) from the network can cost far more to parse than its size
suggests: 16 KB of object streams inflate to MBs that pyHanko's lexer walks a
byte at a time. So the event loop never parses one: a job runs in a worker
process forked from a forkserver that preloaded the parsers, and

- each worker runs exactly one job, then is killed: nothing a document did
  (memory, parser state) outlives its request, and the per-process limits
  below are per job;
- RLIMIT_CPU (soft: SIGXCPU terminates, hard one second later: SIGKILL) bounds
  CPU time, RLIMIT_AS bounds the address space it may grow by (MemoryError);
- the parent waits at most the wall-clock limit, then kills the worker;
- a few workers are kept forked and idle, and each one taken is replaced at
  once, so a killed or hung worker never leaves the pool short for long.

Jobs are plain module-level functions (pickled by reference) with picklable
arguments and results. No aiohttp here; PKCS#11 never enters a worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import resource
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from prometheus_client import Counter, Histogram

from libs.service.logging import get_logger

MB = 1024 * 1024
# Imported first by the forkserver: structlog's optional extras left out there too (libs/lean_start.py).
LEAN_PRELOAD = "libs.lean_preload"
JOBS = Counter("harbour_signing_sandbox_jobs_total", "Untrusted-parsing jobs run in the worker sandbox, by outcome.", ["job", "outcome"])
JOB_SECONDS = Histogram("harbour_signing_sandbox_job_seconds", "Wall-clock time of sandboxed parsing jobs, by job.", ["job"],
                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
log = get_logger("harbour.signing.sandbox")


@dataclass(frozen=True)
class Limits:
    workers: int = 2            # idle workers kept ready (and the most jobs running at once)
    cpu_s: int = 2              # CPU seconds one job may use
    memory_bytes: int = 256 * MB  # address space one job may add to the preloaded worker
    wall_s: float = 5.0         # running one job (and, separately, the longest wait for a free worker)


class LimitExceeded(Exception):
    """The job ran out of CPU time, memory or wall-clock time (or its worker died): the input is refused."""

    def __init__(self, limit: str) -> None:
        super().__init__(f"parsing it exceeded the {limit} limit")
        self.limit = limit


class SandboxBusy(Exception):
    """No worker became free within the wall-clock limit: retry later (not the input's fault)."""


class _WorkerFailed(Exception):
    """Raised in the parent when a worker's reply says the job raised something it could not send back."""


def _serve(conn: Connection, cpu_s: int, memory_bytes: int) -> None:
    """A worker's life: set its limits, run one job, send back ("ok", result) or ("raised", exception)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the parent's to handle
    try:
        job, args = conn.recv()
    except EOFError:
        return
    # Limits after receiving the job: unpickling is the parent's data and cheap; only the job is bounded.
    current = _address_space()
    resource.setrlimit(resource.RLIMIT_AS, (current + memory_bytes, current + memory_bytes))
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime)
    resource.setrlimit(resource.RLIMIT_CPU, (spent + cpu_s, spent + cpu_s + 1))
    try:
        reply: tuple[str, Any] = ("ok", job(*args))
    except MemoryError:
        reply = ("limit", "memory")
    except Exception as exc:  # the job's own refusal (e.g. Unverifiable) goes back to be raised in the parent
        reply = ("raised", exc)
    try:
        conn.send(reply)
    except MemoryError:
        conn.send(("limit", "memory"))
    except (pickle.PicklingError, TypeError, AttributeError):
        conn.send(("raised", _WorkerFailed(f"{type(reply[1]).__name__} could not be sent back")))


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


class _Worker:
    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process, self.conn = process, conn

    def exchange(self, job: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        """Blocking (run in a thread): send the job, wait for the reply; a worker that died is a limit hit."""
        try:
            self.conn.send((job, args))
            return self.conn.recv()
        except (EOFError, OSError):
            self.process.join(1)
            code = self.process.exitcode
            # SIGXCPU at the soft CPU limit, SIGKILL at the hard one (or the kernel's OOM killer).
            return ("limit", "cpu" if code in (-signal.SIGXCPU, -signal.SIGKILL) else "worker")

    def kill(self) -> None:
        """Never raises: it runs unawaited after every job."""
        try:
            self.conn.close()
            if self.process.is_alive():
                self.process.kill()
            self.process.join(2)
        except Exception as exc:  # already gone: nothing left to end
            log.warning("sandbox_kill_failed", error=type(exc).__name__)


class Sandbox:
    def __init__(self, limits: Limits, preload: list[str]) -> None:
        self.limits = limits
        self._context = multiprocessing.get_context("forkserver")
        # The forkserver imports the parsers once; every worker is a cheap fork of it. Lean start first: the
        # forkserver runs none of our entry points.
        self._context.set_forkserver_preload([LEAN_PRELOAD, *preload])
        # Blocking pipe I/O and forks happen here, never on the event loop (nor in its default executor).
        self._threads = ThreadPoolExecutor(max_workers=limits.workers * 2 + 1, thread_name_prefix="sandbox")
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        # Each job taken is replaced at once, so the idle queue alone would not bound how many run together.
        self._slots = asyncio.Semaphore(limits.workers)
        self._refills: set[asyncio.Task[None]] = set()
        self._closed = False
        self._fork_ok = True

    async def start(self) -> None:
        await asyncio.gather(*(self._refill() for _ in range(self.limits.workers)))

    async def close(self) -> None:
        self._closed = True
        for task in list(self._refills):
            task.cancel()
        await asyncio.gather(*self._refills, return_exceptions=True)
        loop = asyncio.get_running_loop()
        while not self._idle.empty():
            await loop.run_in_executor(self._threads, self._idle.get_nowait().kill)
        self._threads.shutdown(wait=False, cancel_futures=True)

    @property
    def idle_workers(self) -> int:
        return self._idle.qsize()

    @property
    def forking(self) -> bool:
        """Whether the last attempt to fork a worker worked (false while the forkserver is unreachable)."""
        return self._fork_ok

    async def run(self, job: Callable[..., Any], *args: Any) -> Any:
        """job(*args) in a fresh worker; its result, or what it raised. LimitExceeded / SandboxBusy otherwise."""
        name = job.__name__
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.limits.wall_s)
        except TimeoutError:
            JOBS.labels(name, "busy").inc()
            raise SandboxBusy("every parsing worker is busy; retry shortly") from None
        try:
            return await self._run_in_slot(name, job, args, started)
        finally:
            self._slots.release()

    async def _run_in_slot(self, name: str, job: Callable[..., Any], args: tuple[Any, ...], started: float) -> Any:
        loop = asyncio.get_running_loop()
        try:
            worker = await asyncio.wait_for(self._idle.get(), timeout=self.limits.wall_s)
        except TimeoutError:
            JOBS.labels(name, "busy").inc()
            raise SandboxBusy("no parsing worker is ready; retry shortly") from None
        self._replace()
        try:
            # The job's own wall clock starts now: time spent queueing for a slot is not the document's fault.
            kind, value = await asyncio.wait_for(loop.run_in_executor(self._threads, worker.exchange, job, args),
                                                 timeout=self.limits.wall_s)
        except TimeoutError:
            kind, value = "limit", "wall-clock"
        finally:
            # One job per worker: killing it also ends a hung one (its pipe thread then returns).
            loop.run_in_executor(self._threads, worker.kill)
            JOB_SECONDS.labels(name).observe(time.perf_counter() - started)
        if kind == "ok":
            JOBS.labels(name, "ok").inc()
            return value
        if kind == "limit":
            JOBS.labels(name, value).inc()
            log.warning("sandbox_limit", job=name, limit=value)
            raise LimitExceeded(value)
        JOBS.labels(name, "refused").inc()
        raise value

    def _replace(self) -> None:
        task = asyncio.create_task(self._refill())
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _refill(self) -> None:
        """Fork one worker and make it available; keep trying while the forkserver is unreachable."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                worker = await loop.run_in_executor(self._threads, self._fork)
            except Exception as exc:  # the forkserver died or the system is out of processes: retry
                self._fork_ok = False
                log.error("sandbox_fork_failed", error=type(exc).__name__)
                await asyncio.sleep(1)
                continue
            self._fork_ok = True
            if self._closed:
                await loop.run_in_executor(self._threads, worker.kill)
                return
            self._idle.put_nowait(worker)
            return

    def _fork(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child, self.limits.cpu_s, self.limits.memory_bytes),
                                        daemon=True, name="signing-sandbox")
        process.start()
        child.close()
        return _Worker(process, parent)

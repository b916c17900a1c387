"""Background processes owned through PID files: started detached, stopped by PID only.

A PID file is trusted only while /proc/<pid>/cmdline still contains the
marker we started the process with, so a recycled PID is never signalled.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: Sequence[str]
    marker: str  # a string unique to this process's command line
    cwd: Path
    env: Mapping[str, str]
    log_file: Path
    pid_file: Path


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The PID recorded in `pid_file` if that process is alive and is still ours."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    status = Path(f"/proc/{pid}/stat")
    try:
        if status.read_text().split(") ", 1)[1].startswith("Z"):
            return None  # a zombie is already dead
    except (OSError, IndexError):
        return None
    return pid if marker in _cmdline(pid) else None


def start(spec: ProcessSpec) -> int:
    """Start `spec` detached (own session, output to its log) unless it already runs; return its PID."""
    pid = running_pid(spec.pid_file, spec.marker)
    if pid is not None:
        return pid
    spec.cwd.mkdir(parents=True, exist_ok=True)
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log_file, "ab") as log:
        process = subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env={**os.environ, **spec.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    spec.pid_file.write_text(str(process.pid))
    return process.pid


def stop(pid_file: Path, marker: str, *, timeout_s: float = 15.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it if it outlives `timeout_s`; True if one was stopped."""
    return stop_many([(pid_file, marker)], timeout_s=timeout_s)[0]


def stop_many(recorded: list[tuple[Path, str]], *, timeout_s: float = 15.0) -> list[bool]:
    """SIGTERM every recorded process (pid file, marker) at once and wait for them together, SIGKILLing those that
    outlive `timeout_s`: their graceful shutdowns overlap instead of adding up. For each, True if one was stopped."""
    pids = []
    for pid_file, marker in recorded:
        pid = running_pid(pid_file, marker)
        pid_file.unlink(missing_ok=True)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        pids.append(pid)
    waiting = [pid for pid in pids if pid is not None]
    deadline = time.monotonic() + timeout_s
    while waiting and time.monotonic() < deadline:
        waiting = [pid for pid in waiting if is_alive(pid)]
        if waiting:
            time.sleep(0.05)
    for pid in waiting:
        kill(pid)
    return [pid is not None for pid in pids]


def kill(pid: int) -> None:
    """SIGKILL `pid` (a process of ours, found through its PID file) and wait until it is gone."""
    os.kill(pid, signal.SIGKILL)
    while is_alive(pid):
        time.sleep(0.02)


def is_alive(pid: int) -> bool:
    try:
        # Reap it if it is our own child, so it does not linger as a zombie.
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# Ports handed out below the kernel's ephemeral range (32768-60999 by default), so the source port of some
# outgoing connection cannot take one between the moment it is chosen and the moment its server binds it (a full
# test run opens thousands of client connections; a port taken from the ephemeral range was once lost that way).
_PRIVATE_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nobody listens on now, never handed out before by this process."""
    for _ in range(200):
        port = random.choice(_PRIVATE_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PRIVATE_PORTS}")


def wait_until(predicate, *, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def tail(log_file: Path, lines: int = 20) -> str:
    """The last lines of a process's log, for an error that says why it stopped (the log may be gone in CI)."""
    try:
        with log_file.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError as error:
        return f"(no log: {error})"

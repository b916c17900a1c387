"""The peers the benches compare Harbour ID with, installed from the registries when missing and run as our own
child processes, stopped by PID: node-oidc-provider (`oidc_provider`, npm) and nginx (`nginx`, apt)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from libs.devstack import processes


@dataclass
class PeerProcess:
    name: str
    process: subprocess.Popen
    url: str
    log_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, port: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not processes.port_open("127.0.0.1", port):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start ({self.process.returncode}); see {self.log_file}:\n"
                                   + self.log_file.read_text(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} did not listen on {port} within {timeout_s:.0f} s; see {self.log_file}")
            time.sleep(0.1)

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Stop it by its PID (our own child): `signum`, then SIGKILL after `timeout_s`."""
        if self.process.poll() is not None:
            return
        os.kill(self.process.pid, signum)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "PeerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

"""Ports for private stacks: chosen where no outgoing connection can take them, never twice, bindable."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from libs.devstack import processes
from libs.devstack.processes import free_port, tail


def _ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_ports_are_outside_the_kernels_ephemeral_range_distinct_and_free():
    # A port from the ephemeral range can become the source port of any client connection between the moment it
    # is chosen and the moment the server binds it (a full run lost a service's start that way).
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert not set(ports) & set(_ephemeral_range())
    for port in ports[:20]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_listening_port_is_never_handed_out(monkeypatch):
    with socket.socket() as taken, socket.socket() as other:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(processes, "_PRIVATE_PORTS", range(busy, busy + 1))
        monkeypatch.setattr(processes, "_handed_out", set())
        with pytest.raises(RuntimeError, match="no free port"):
            free_port()
        # and the one free port of a two-port range, once, then none
        other.bind(("127.0.0.1", 0))
        spare = other.getsockname()[1]
        other.close()
        monkeypatch.setattr(processes, "_PRIVATE_PORTS", [busy, spare])
        assert free_port() == spare
        with pytest.raises(RuntimeError, match="no free port"):
            free_port()


def test_tail_shows_the_last_lines_of_a_log_and_says_when_there_is_none(tmp_path):
    log = tmp_path / "auth.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    assert tail(log, lines=3) == "line 97\nline 98\nline 99"
    assert "no log" in tail(tmp_path / "missing.log")

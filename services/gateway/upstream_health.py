"""Each upstream's health, probed in the background: shown in /readyz and as a metric, never the gateway's readiness.

Every `probe_s` (an upstream that is down: every 0.5 s) the gateway asks
each upstream's `/healthz`. The result is
`harbour_gateway_upstream_up{upstream}` and the `upstreams` section of the
gateway's `/readyz` body — information for operators: the gateway's own
readiness (its revocation list) does not depend on it, so one dead service
never takes every gateway pod out of rotation while the other routes work.

A probe refused by an upstream it has seen up opens that upstream's circuit
at once, so its routes answer 503 without trying it; a probe answered while the
circuit is open closes it (the service is reachable again). A probe that times
out — its connection not accepted, or no answer, within the probe's timeout: a
stalled or saturated service, or a loaded host — is reported, and left to the
breaker's own count of failed requests (one slow accept is no proof of death).
"""

from __future__ import annotations

import asyncio

import aiohttp

from libs.service.logging import get_logger

from .metrics import UPSTREAM_UP
from .proxy import Upstream

log = get_logger("harbour.gateway.upstreams")

UNKNOWN = "unknown"
UP = "ok"
DOWN_PROBE_S = 0.5


class UpstreamHealth:
    def __init__(self, upstreams: dict[str, Upstream], *, probe_s: float, timeout_s: float) -> None:
        self.upstreams = upstreams
        self.probe_s = probe_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.status: dict[str, str] = dict.fromkeys(upstreams, UNKNOWN)
        self.seen_up: set[str] = set()

    def report(self) -> dict[str, str]:
        """Upstream name → `ok`, `unknown` (not probed yet), `circuit open`, or why the last probe failed."""
        return {name: ("circuit open" if self.upstreams[name].breaker.state == "open" and status == UP else status)
                for name, status in self.status.items()}

    async def probe(self, upstream: Upstream) -> None:
        try:
            async with upstream.session.get(upstream.base_url + "/healthz", timeout=self.timeout) as response:
                response.raise_for_status()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            self._down(upstream, f"error: {type(exc).__name__}")
            if upstream.name in self.seen_up:
                # It died: its routes answer 503 at once rather than each try a connection. One never seen up
                # (starting alongside the gateway) is left to its requests, so it is served the moment it listens.
                upstream.breaker.trip()
            return
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self._down(upstream, "timeout" if isinstance(exc, asyncio.TimeoutError) else f"error: {type(exc).__name__}")
            return
        if self.status[upstream.name] != UP:
            log.info("upstream up", upstream=upstream.name)
        self.status[upstream.name] = UP
        self.seen_up.add(upstream.name)
        UPSTREAM_UP.labels(upstream.name).set(1)
        if upstream.breaker.state != "closed":
            upstream.breaker.succeeded()

    def _down(self, upstream: Upstream, why: str) -> None:
        if self.status[upstream.name] != why:
            log.warning("upstream down", upstream=upstream.name, reason=why)
        self.status[upstream.name] = why
        UPSTREAM_UP.labels(upstream.name).set(0)

    async def run(self) -> None:
        """Probe each upstream every `probe_s`, and one that is down (or not seen yet) every `DOWN_PROBE_S`: a
        circuit the probe opened closes within half a second of the service answering again (at start-up too,
        when the gateway comes up before its upstreams)."""
        loop = asyncio.get_running_loop()
        due = dict.fromkeys(self.upstreams, 0.0)
        while True:
            now = loop.time()
            probing = [upstream for name, upstream in self.upstreams.items() if due[name] <= now]
            await asyncio.gather(*(self.probe(upstream) for upstream in probing))
            for upstream in probing:
                up = self.status[upstream.name] == UP
                due[upstream.name] = now + (self.probe_s if up else min(self.probe_s, DOWN_PROBE_S))
            await asyncio.sleep(max(0.05, min(due.values()) - loop.time()))

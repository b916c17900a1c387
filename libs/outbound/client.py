"""Calling or fetching a URL that someone outside the platform gave us, safely.

Every request: the URL is checked again (urls.check_url); the name is
resolved and *every* address checked before connecting (a name with one
private address among public ones is refused); the socket is checked once
more against the address it is about to connect to (`socket_factory`), so an
IP literal, a DNS cache or a rebinding answer between the two lookups cannot
reach a refused peer. No redirects are followed (a 3xx is just an answer),
no proxy from the environment is used, the whole exchange is bounded in
time and the body in bytes. A failure to reach an origin is remembered for
`failure_ttl_s`: calls to it fail fast meanwhile, so a slow or refused URL
cannot be made to tie up the caller again and again.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from libs.service.tracing import client_session

from . import addresses
from .settings import allow_loopback_from_env
from .urls import OutboundURLRefused, check_url

MAX_FAILURES_REMEMBERED = 10_000


class OutboundError(Exception):
    """The request could not be made or completed; `reason` is safe to record and show to the URL's owner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RefusedAddress(OSError):
    """A resolved or connected-to address the policy refuses."""


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    body: bytes
    content_type: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _GuardedResolver(AbstractResolver):
    """The system resolver (getaddrinfo: /etc/hosts included), refusing a name if any of its addresses is refused."""

    def __init__(self, allow_loopback: bool, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.ThreadedResolver()
        self._owns_inner = inner is None
        self._allow_loopback = allow_loopback

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = addresses.parse(result["host"])
            reason = "an unparsable address" if address is None else addresses.refusal(address, allow_loopback=self._allow_loopback)
            if reason:
                raise RefusedAddress(f"{host} resolves to {reason}")
        return results

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()


def _guarded_socket_factory(allow_loopback: bool, refused: list[str]):
    def factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = addresses.parse(str(sockaddr[0]))
        reason = "an unparsable address" if address is None else addresses.refusal(address, allow_loopback=allow_loopback)
        if reason:
            refused.append(reason)
            raise RefusedAddress(f"refused to connect to {reason}")
        return socket.socket(family=family, type=type_, proto=proto)
    return factory


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _refusal_in(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, RefusedAddress):
            return str(seen)
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return None


class Outbound:
    """The platform's one way out to URLs given by clients and agencies (jwks_uri, status callbacks)."""

    def __init__(self, *, allow_loopback: bool | None = None, failure_ttl_s: float = 5.0, connect_timeout_s: float = 3.0,
                 resolver: AbstractResolver | None = None) -> None:
        self.allow_loopback = allow_loopback_from_env() if allow_loopback is None else allow_loopback
        self.resolver = resolver  # the name service under the guard (tests give a fake one; default: getaddrinfo)
        self.failure_ttl_s = failure_ttl_s
        self.connect_timeout_s = connect_timeout_s
        self._failures: dict[str, tuple[float, str]] = {}

    def check(self, url: str) -> str:
        """Registration-time check of the URL's form and literal host (raises OutboundURLRefused)."""
        return check_url(url, allow_loopback=self.allow_loopback)

    async def check_resolved(self, url: str, *, timeout_s: float = 3.0) -> None:
        """Registration-time check of a name: it must resolve, and only to allowed addresses (raises OutboundURLRefused)."""
        self.check(url)
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        if addresses.parse(host) is not None:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await _GuardedResolver(self.allow_loopback, self.resolver).resolve(host, parts.port or 443, socket.AF_UNSPEC)
        except RefusedAddress as exc:
            raise OutboundURLRefused(f"the platform does not call {exc}") from None
        except (OSError, TimeoutError):
            raise OutboundURLRefused(f"{host} does not resolve") from None

    def remember_failure(self, url: str, reason: str) -> None:
        if len(self._failures) >= MAX_FAILURES_REMEMBERED:
            now = time.monotonic()
            self._failures = {k: v for k, v in self._failures.items() if v[0] > now}
            if len(self._failures) >= MAX_FAILURES_REMEMBERED:
                self._failures.clear()
        self._failures[_origin(url)] = (time.monotonic() + self.failure_ttl_s, reason)

    def recent_failure(self, url: str) -> str | None:
        entry = self._failures.get(_origin(url))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    async def request(self, method: str, url: str, *, data: bytes | str | None = None, headers: dict[str, str] | None = None,
                      timeout_s: float = 5.0, max_bytes: int = 64 * 1024) -> OutboundResponse:
        """One request, no redirects; OutboundError (with a reason) if refused, unreachable, too slow or too large."""
        try:
            self.check(url)
        except OutboundURLRefused as exc:
            raise OutboundError(str(exc)) from None
        cached = self.recent_failure(url)
        if cached is not None:
            raise OutboundError(f"{cached} (failed moments ago; not retried yet)")
        refused: list[str] = []
        connector = aiohttp.TCPConnector(resolver=_GuardedResolver(self.allow_loopback, self.resolver), use_dns_cache=False, force_close=True,
                                         socket_factory=_guarded_socket_factory(self.allow_loopback, refused))
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(self.connect_timeout_s, timeout_s))
        try:
            async with client_session(connector=connector, timeout=timeout, trust_env=False) as session:
                async with session.request(method, url, data=data, headers=headers, allow_redirects=False) as response:
                    body = await response.content.read(max_bytes + 1)
                    if len(body) > max_bytes:
                        raise OutboundError(f"the answer is larger than {max_bytes} bytes")
                    return OutboundResponse(response.status, body, response.content_type)
        except OutboundError as exc:
            self.remember_failure(url, exc.reason)
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            refusal = _refusal_in(exc) or (f"refused to connect to {refused[0]}" if refused else None)
            if refusal:
                reason = refusal if refusal.startswith(("refused", "the platform")) else f"refused: {refusal}"
            elif isinstance(exc, TimeoutError):
                reason = f"no complete answer within {timeout_s:g} s"
            else:
                reason = f"could not connect ({type(exc).__name__})"
            self.remember_failure(url, reason)
            raise OutboundError(reason) from None

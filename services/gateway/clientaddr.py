"""The caller's address for per-address rate limits, seen through trusted proxies only.

Behind an ingress controller every request comes from the controller's
address; its `X-Forwarded-For` names the client. The header is believed only
when the direct peer is a trusted proxy, and then read from the right, skipping
other trusted hops, so a client cannot choose its own bucket by sending the
header itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    if not peer or not trusted or not _trusted(peer, trusted) or not forwarded_for:
        return peer or "unknown"
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, trusted):
            return hop
    return peer

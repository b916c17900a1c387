"""Which peer addresses the platform may connect to: public unicast only (pure logic, no I/O).

Everything that can reach the platform's own network or the host is refused:
private, loopback, link-local (169.254/16 holds cloud metadata), shared
(100.64/10), unique-local, site-local, multicast, unspecified (0.0.0.0 and ::
reach the local host on Linux), reserved and documentation ranges. IPv6
forms that carry an IPv4 address (::ffff:a.b.c.d, ::a.b.c.d, 6to4 2002::/16,
NAT64 64:ff9b::/96 and 64:ff9b:1::/48, Teredo 2001::/32) are refused
whatever they embed: a resolver of a public service never needs them, and
checking the embedded address would leave the translation to whoever runs
the gateway. Loopback (127/8 and ::1, never in a mapped form) is allowed only
when the caller says so (tests and the dev stack).
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

IPAddress = IPv4Address | IPv6Address

_V4_REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
))
# IPv6 prefixes that embed or translate IPv4, or are not public unicast.
_V6_REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "::/96",            # IPv4-compatible (deprecated) and :: / ::1
    "::ffff:0:0/96",    # IPv4-mapped
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b::/96",     # NAT64 well-known prefix
    "64:ff9b:1::/48",   # NAT64 local-use
    "100::/64",         # discard
    "2001::/23",        # IETF protocol assignments, Teredo 2001::/32 included
    "2001:db8::/32",    # documentation
    "2002::/16",        # 6to4
    "3fff::/20",        # documentation
    "5f00::/16",        # segment routing
    "fc00::/7",         # unique-local (fd00::/8 included)
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated)
    "ff00::/8",         # multicast
))


def parse(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal (brackets and an IPv6 zone allowed), else None."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback(address: IPAddress) -> bool:
    """Plain loopback only: 127/8 or ::1 (a mapped ::ffff:127.0.0.1 is not let through by the loopback setting)."""
    return address in _V4_REFUSED[3] if address.version == 4 else address == IPv6Address("::1")


def refusal(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why the platform must not connect to this address, or None when it may."""
    if allow_loopback and is_loopback(address):
        return None
    if address.version == 4:
        if any(address in net for net in _V4_REFUSED) or not address.is_global:
            return f"{address} is a loopback, private, link-local or otherwise non-public address"
        return None
    if address.scope_id is not None:
        return f"{address} is a scoped (link-local) address"
    if any(address in net for net in _V6_REFUSED) or not address.is_global or address.is_site_local:
        return f"{address} is a loopback, unique-local, link-local, mapped/translated IPv4 or otherwise non-public address"
    return None

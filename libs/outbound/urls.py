"""Checking an outbound URL when it is registered (pure logic, no DNS): scheme, form and any literal host.

A name is checked again — every address it resolves to — when the platform
connects (client.py); here only what the URL itself says can be judged.
https always; http only to a loopback host when loopback is allowed (tests,
dev stack). Hosts must be a canonical IP literal or a dotted DNS name:
numeric tricks (`2130706433`, `127.1`, `0x7f.1`), single-label intranet
names and special-use suffixes (`.local`, `.internal`, `.localhost`...) are
refused.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from . import addresses
from .settings import allow_loopback_from_env

MAX_URL_LENGTH = 2000
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SPECIAL_SUFFIXES = (".local", ".localdomain", ".internal", ".intranet", ".lan", ".home.arpa", ".arpa", ".invalid", ".onion")
LOOPBACK_NAMES = ("localhost",)


class OutboundURLRefused(ValueError):
    """The URL may not be fetched or called by the platform (a pydantic validator turns it into a 422)."""


def _is_loopback_name(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.endswith(".localhost")


def check_url(url: str, *, allow_loopback: bool | None = None) -> str:
    """The URL unchanged if the platform may fetch or call it; else OutboundURLRefused saying why."""
    loopback_ok = allow_loopback_from_env() if allow_loopback is None else allow_loopback
    if len(url) > MAX_URL_LENGTH:
        raise OutboundURLRefused("the URL is too long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundURLRefused("not a valid URL") from None
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        raise OutboundURLRefused("must be an absolute https URL")
    if parts.username is not None or parts.password is not None or parts.fragment or "#" in url:
        raise OutboundURLRefused("no credentials and no fragment in the URL")
    if port == 0:
        raise OutboundURLRefused("port 0 cannot be called")
    address = addresses.parse(host)
    loopback = (address is not None and addresses.is_loopback(address)) or _is_loopback_name(host)
    if parts.scheme == "http" and not (loopback and loopback_ok):
        raise OutboundURLRefused("must use https")
    if address is not None:
        reason = addresses.refusal(address, allow_loopback=loopback_ok)
        if reason:
            raise OutboundURLRefused(f"the platform does not call {reason}")
        return url
    if _is_loopback_name(host):
        if not loopback_ok:
            raise OutboundURLRefused("the platform does not call loopback hosts")
        return url
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise OutboundURLRefused("the host must be a public DNS name or a public IP address")
    if labels[-1].isdigit() or labels[-1].startswith("0x") or re.fullmatch(r"[0-9.x]+", host):
        raise OutboundURLRefused("numeric hosts must be written as a canonical IP address")
    if host.endswith(_SPECIAL_SUFFIXES):
        raise OutboundURLRefused("the host is a special-use (non-public) name")
    return url

"""Outbound requests to URLs from outside the platform (jwks_uri, status callbacks): SSRF-safe by construction.

`check_url` at registration (form, scheme, literal hosts), `Outbound` at
connection time (every resolved address and the socket's peer checked, no
redirects, bounded time and size, failures remembered briefly). Loopback is
refused unless HARBOUR_OUTBOUND_ALLOW_LOOPBACK is on (tests, dev stack);
private, link-local, unique-local and mapped ranges are refused always.
"""

from .addresses import refusal
from .client import Outbound, OutboundError, OutboundResponse
from .settings import allow_loopback_from_env
from .urls import OutboundURLRefused, check_url

__all__ = ["Outbound", "OutboundError", "OutboundResponse", "OutboundURLRefused", "allow_loopback_from_env", "check_url", "refusal"]

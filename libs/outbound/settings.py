"""The one setting of outbound requests: may the platform call loopback (tests and the dev stack only)."""

from __future__ import annotations

from libs.service.production import OUTBOUND_ALLOW_LOOPBACK
from libs.service.settings import env_bool

# HARBOUR_OUTBOUND_ALLOW_LOOPBACK; outside the sandbox a process refuses to start with it on (libs/service/production.py).
ALLOW_LOOPBACK_VAR = OUTBOUND_ALLOW_LOOPBACK


def allow_loopback_from_env() -> bool:
    """Read on every check, so a process's setting is whatever its environment says (off unless set)."""
    return env_bool(ALLOW_LOOPBACK_VAR, False)

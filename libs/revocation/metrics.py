"""What ops watch of each process's revocation list: how much it holds and whether it is still current."""

from __future__ import annotations

from prometheus_client import Gauge

REVOCATION_ENTRIES = Gauge(
    "harbour_revocation_entries",
    "Revoked tokens, devices and accounts this process's list holds (expired ones are pruned every minute).",
    ["service"],
)
REVOCATION_STALENESS = Gauge(
    "harbour_revocation_list_staleness_seconds",
    "Seconds since this process last read the revocations topic successfully (a fetch every 0.5 s when healthy); "
    "while it grows, a revocation may not be honoured here.",
    ["service"],
)

"""The audit ledger's metrics (docs/operations.md): what it appended, how big it is, when it last signed a checkpoint."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge

APPENDED = Counter("harbour_audit_ledger_appended_total", "Audit records appended to the ledger.")
LEDGER_SIZE = Gauge("harbour_audit_ledger_size", "Records in the audit ledger (its head's sequence number).")
WITHHELD = Counter("harbour_audit_ledger_withheld_total",
                   "Values withheld from audit records because they looked like personal data (should stay 0).")
CHECKPOINT_TIME = Gauge("harbour_audit_checkpoint_timestamp_seconds",
                        "When the latest audit checkpoint this process knows of was signed (Unix time).")
CHECKPOINT_AGE = Gauge("harbour_audit_checkpoint_age_seconds",
                       "Seconds since the latest audit checkpoint this process knows of (0 before any).")
_latest = {"at": 0.0}


def checkpoint_signed(at: float) -> None:
    _latest["at"] = at
    CHECKPOINT_TIME.set(at)


CHECKPOINT_AGE.set_function(lambda: max(0.0, time.time() - _latest["at"]) if _latest["at"] else 0.0)

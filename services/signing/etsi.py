"""ETSI EN 319 102-1 vocabulary for a verification report: indication, sub-indication, level reached.

Pure logic over what verify.py's checks found (no pyHanko here), so it is unit-tested on plain dicts:

- integrity: the signed digest differs → FAILED / HASH_FAILURE; the signature value does not verify →
  FAILED / SIG_CRYPTO_FAILURE;
- revocation (our CRL or the CA's records): revoked at or before the time a valid timestamp proves →
  FAILED / REVOKED; revoked but no timestamp proves the signature existed before → INDETERMINATE /
  REVOKED_NO_POE; revoked after the proven time → the timestamp is the proof of existence and the
  signature PASSES (EN 319 102-1, validation process for signatures with time);
- chain: no path to our root → INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND (another problem of the path keeps
  the standard's name pyHanko gives it, e.g. OUT_OF_BOUNDS_NO_POE for an expired certificate);
- a timestamp that does not verify → INDETERMINATE / NO_POE (it proves nothing);
- a PDF whose later revisions make changes the signature does not allow → FAILED / SIG_CONSTRAINTS_FAILURE;
- passed otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

PASSED, FAILED, INDETERMINATE = "PASSED", "FAILED", "INDETERMINATE"


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _path_problem(chain: dict[str, Any]) -> str:
    """pyHanko names a path problem with the standard's sub-indication ('AdESIndeterminate.NO_POE')."""
    problem = chain.get("problem") or ""
    name = problem.rsplit(".", 1)[-1]
    return name if name and name not in ("REVOKED", "REVOKED_NO_POE") else "NO_CERTIFICATE_CHAIN_FOUND"


def conclusion(report: dict[str, Any], *, allowed_changes: bool = True) -> dict[str, Any]:
    """{"indication", "sub_indication"} for one signature's (or document timestamp's) report."""
    if report.get("type") == "unreadable":
        return {"indication": FAILED, "sub_indication": "FORMAT_FAILURE"}
    integrity = report.get("integrity") or {}
    if not integrity.get("intact"):
        return {"indication": FAILED, "sub_indication": "HASH_FAILURE"}
    if not integrity.get("valid"):
        return {"indication": FAILED, "sub_indication": "SIG_CRYPTO_FAILURE"}
    timing = report.get("signing_time") or {}
    proven = _when(timing.get("timestamp")) if timing.get("timestamp_valid", True) else None
    revocation = report.get("revocation") or {}
    chain = report.get("chain") or {}
    if revocation.get("status") == "revoked":
        revoked_at = _when(revocation.get("revoked_at"))
        if proven is None or revoked_at is None:
            return {"indication": INDETERMINATE, "sub_indication": "REVOKED_NO_POE"}
        if revoked_at <= proven:
            return {"indication": FAILED, "sub_indication": "REVOKED"}
        # Revoked after the proven time: the chain was otherwise good then (pyHanko only objected to the revocation).
    elif not chain.get("trusted"):
        return {"indication": INDETERMINATE, "sub_indication": _path_problem(chain)}
    if timing.get("timestamp_valid") is False:
        return {"indication": INDETERMINATE, "sub_indication": "NO_POE"}
    if not allowed_changes:
        return {"indication": FAILED, "sub_indication": "SIG_CONSTRAINTS_FAILURE"}
    return {"indication": PASSED, "sub_indication": None}


def level(*, signed_attributes: bool, signing_certificate: bool, signature_timestamp: bool,
          revocation_data: bool, archive_timestamp: bool) -> str | None:
    """The baseline level the signature really reaches (EN 319 142-1 / 319 122-1): each level needs the ones below.
    None when not even B-B (no signed attributes binding the signing certificate)."""
    if not (signed_attributes and signing_certificate):
        return None
    if not signature_timestamp:
        return "B-B"
    if not revocation_data:
        return "B-T"
    return "B-LTA" if archive_timestamp else "B-LT"

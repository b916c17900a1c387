"""ETSI EN 319 102-1 indications and the baseline level, from what verification's checks found (services/signing/etsi.py)."""

from __future__ import annotations

import pytest

from services.signing import etsi

T = "2026-12-02T06:00:00+00:00"
BEFORE, AFTER = "2026-12-02T05:59:00+00:00", "2026-12-02T06:01:00+00:00"


def found(*, intact=True, valid=True, trusted=True, problem=None, revocation=None, timestamp=T, timestamp_valid=True):
    return {"type": "signature", "integrity": {"intact": intact, "valid": valid},
            "chain": {"trusted": trusted, "problem": problem},
            "revocation": revocation or {"status": "good", "source": "crl"},
            "signing_time": {"timestamp": timestamp, "timestamp_valid": timestamp_valid if timestamp else None}}


def revoked(at):
    return {"status": "revoked", "revoked_at": at, "reason": "key_compromise", "source": "crl"}


@pytest.mark.parametrize(("checks", "expected"), [
    (found(), ("PASSED", None)),
    (found(intact=False, valid=False), ("FAILED", "HASH_FAILURE")),
    (found(valid=False), ("FAILED", "SIG_CRYPTO_FAILURE")),
    (found(trusted=False, problem="AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND"), ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")),
    (found(trusted=False), ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")),
    (found(trusted=False, problem="AdESIndeterminate.OUT_OF_BOUNDS_NO_POE"), ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE")),
    # Revoked: the timestamp is the proof of existence (POE) that decides.
    (found(trusted=False, revocation=revoked(BEFORE)), ("FAILED", "REVOKED")),
    (found(trusted=False, revocation=revoked(T)), ("FAILED", "REVOKED")),
    (found(trusted=False, revocation=revoked(AFTER)), ("PASSED", None)),
    (found(trusted=False, revocation=revoked(BEFORE), timestamp=None), ("INDETERMINATE", "REVOKED_NO_POE")),
    (found(trusted=False, revocation=revoked(AFTER), timestamp_valid=False), ("INDETERMINATE", "REVOKED_NO_POE")),
    (found(timestamp_valid=False), ("INDETERMINATE", "NO_POE")),
    (found(timestamp=None), ("PASSED", None)),  # no timestamp: B-B, nothing to doubt
    ({"type": "unreadable", "valid": False, "error": "KeyError"}, ("FAILED", "FORMAT_FAILURE")),
])
def test_what_the_checks_found_maps_to_the_standards_indication(checks, expected):
    verdict = etsi.conclusion(checks)
    assert (verdict["indication"], verdict["sub_indication"]) == expected


def test_changes_a_pdf_signature_does_not_allow_fail_its_constraints():
    assert etsi.conclusion(found(), allowed_changes=False) == {"indication": "FAILED", "sub_indication": "SIG_CONSTRAINTS_FAILURE"}
    # A broken digest is still named as such first.
    assert etsi.conclusion(found(intact=False), allowed_changes=False)["sub_indication"] == "HASH_FAILURE"


@pytest.mark.parametrize(("has", "expected"), [
    ({}, "B-B"),
    ({"signing_certificate": False}, None),
    ({"signed_attributes": False}, None),
    ({"signature_timestamp": True}, "B-T"),
    ({"signature_timestamp": True, "archive_timestamp": True}, "B-T"),  # an archive timestamp without revocation data
    ({"signature_timestamp": True, "revocation_data": True}, "B-LT"),
    ({"signature_timestamp": True, "revocation_data": True, "archive_timestamp": True}, "B-LTA"),
    ({"revocation_data": True, "archive_timestamp": True}, "B-B"),  # each level needs the ones below
])
def test_the_level_is_what_the_signature_really_contains(has, expected):
    flags = {"signed_attributes": True, "signing_certificate": True, "signature_timestamp": False,
             "revocation_data": False, "archive_timestamp": False, **has}
    assert etsi.level(**flags) == expected

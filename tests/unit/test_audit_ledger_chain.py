"""The audit ledger's hash chain and its verification (services/signing/ledger/chain.py): pure, no I/O."""

from __future__ import annotations

import copy
import hashlib

from libs.tokens.jwk import generate_private_key, public_jwk, thumbprint
from libs.tokens.jws import sign
from services.signing.ledger.chain import (
    CHECKPOINT_TYP,
    GENESIS,
    append,
    canonical,
    checkpoint_claims,
    public_keys,
    verify_log,
)
from services.signing.ledger.privacy import WITHHELD, screen

KEY = generate_private_key()
KID = thumbprint(public_jwk(KEY))
KEYS = public_keys({"keys": [public_jwk(KEY) | {"kid": KID}]})


def record(i: int) -> dict:
    return {"id": f"event-{i}", "source": "/auth", "type": "audit.recorded", "subject": f"acct-{i % 3}",
            "time": f"2026-12-02T08:00:{i % 60:02d}Z", "data": {"action": "login", "actor": "rp-1", "outcome": "success", "n": i}}


def log(n: int = 10) -> list[dict]:
    return [e.as_json() for e in append(0, GENESIS, [record(i) for i in range(1, n + 1)])]


def checkpoint(entries: list[dict], size: int, key=KEY, kid=KID) -> dict:
    head = entries[size - 1]["chain"] if size else GENESIS.hex()
    jws = sign(checkpoint_claims(issuer="https://id.example", size=size, head=head, time="2026-12-02T08:01:00Z", iat=1),
               key, {"kid": kid, "typ": CHECKPOINT_TYP})
    return {"size": size, "head": head, "jws": jws}


def test_canonical_is_sorted_compact_utf8_and_the_chain_links_each_leaf_to_the_last():
    assert canonical({"b": 1, "a": "é", "c": {"z": None, "y": True}}) == '{"a":"é","b":1,"c":{"y":true,"z":null}}'.encode()
    entries = log(3)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    leaf1 = hashlib.sha256(canonical(record(1))).digest()
    assert entries[0]["leaf"] == leaf1.hex()
    assert entries[0]["chain"] == hashlib.sha256(GENESIS + leaf1).hexdigest()
    assert entries[1]["chain"] == hashlib.sha256(bytes.fromhex(entries[0]["chain"]) + bytes.fromhex(entries[1]["leaf"])).hexdigest()
    # Appending later continues the same chain.
    more = append(2, bytes.fromhex(entries[1]["chain"]), [record(3)])
    assert more[0].as_json() == entries[2]


def test_an_untouched_log_verifies_with_its_checkpoints():
    entries = log(10)
    report = verify_log(entries, [checkpoint(entries, 4), checkpoint(entries, 10)], KEYS)
    assert report.ok and report.size == 10 and report.checkpoints == 2 and report.head == entries[-1]["chain"]
    assert report.as_json()["first_problem"] is None


def test_altered_details_are_reported_as_changed_at_that_record():
    entries = log(10)
    entries[6]["record"]["data"]["outcome"] = "failure"
    report = verify_log(entries, [checkpoint(log(10), 10)], KEYS)
    assert (report.first.kind, report.first.seq) == ("changed", 7)


def test_a_deleted_record_is_reported_as_removed():
    entries = log(10)
    del entries[4]
    report = verify_log(entries, [], KEYS)
    assert (report.first.kind, report.first.seq) == ("removed", 5)


def test_a_deleted_record_with_the_rest_renumbered_is_reported_at_its_place():
    entries = log(10)
    del entries[4]
    for seq, entry in enumerate(entries, 1):
        entry["seq"] = seq
    report = verify_log(entries, [], KEYS)
    assert (report.first.kind, report.first.seq) == ("removed", 5)


def test_the_last_records_deleted_are_found_by_the_checkpoint_that_covered_them():
    entries = log(10)
    report = verify_log(entries[:8], [checkpoint(entries, 10)], KEYS)
    assert (report.first.kind, report.first.seq) == ("removed", 9)


def test_two_records_swapped_are_reported_as_reordered():
    entries = log(10)
    # The stored documents' contents exchanged, each keeping its place's seq.
    a, b = copy.deepcopy(entries[2]), copy.deepcopy(entries[3])
    entries[2] = b | {"seq": 3}
    entries[3] = a | {"seq": 4}
    report = verify_log(entries, [], KEYS)
    assert (report.first.kind, report.first.seq) == ("reordered", 3)
    # Swapped in the file's order, numbers and all.
    entries = log(10)
    entries[2], entries[3] = entries[3], entries[2]
    report = verify_log(entries, [], KEYS)
    assert report.first.kind in ("removed", "reordered") and report.first.seq == 3


def test_a_record_rewritten_with_its_hashes_and_the_rest_recomputed_is_caught_by_the_checkpoint():
    entries = log(10)
    records = [e["record"] for e in entries]
    records[5]["data"]["actor"] = "someone-else"
    forged = [e.as_json() for e in append(0, GENESIS, records)]
    report = verify_log(forged, [checkpoint(entries, 3), checkpoint(entries, 8)], KEYS)
    assert report.first.kind == "changed" and report.first.seq == 8
    assert report.checkpoints == 1


def test_a_checkpoint_with_an_altered_signature_or_an_unknown_key_fails():
    entries = log(5)
    good = checkpoint(entries, 5)
    header, payload, signature = good["jws"].split(".")
    altered = good | {"jws": f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"}
    report = verify_log(entries, [altered], KEYS)
    assert not report.ok and (report.first.kind, report.first.seq) == ("checkpoint", 5)
    other = generate_private_key()
    report = verify_log(entries, [checkpoint(entries, 5, key=other, kid="other")], KEYS)
    assert (report.first.kind, report.first.seq) == ("checkpoint", 5)
    # Signed by a key of the JWKS but over another head: the log does not match it.
    report = verify_log(entries, [checkpoint(log(6), 5)], KEYS)
    assert report.ok  # log(6)[:5] is the same log
    forged = checkpoint(entries, 5) | {}
    wrong_head = sign(checkpoint_claims(issuer="x", size=5, head="00" * 32, time="t", iat=1), KEY, {"kid": KID, "typ": CHECKPOINT_TYP})
    report = verify_log(entries, [forged | {"jws": wrong_head}], KEYS)
    assert (report.first.kind, report.first.seq) == ("changed", 5)


def test_a_records_chain_hash_altered_alone_is_changed():
    entries = log(6)
    entries[2]["chain"] = "11" * 32
    report = verify_log(entries, [], KEYS)
    assert (report.first.kind, report.first.seq) == ("changed", 3)


def test_personal_data_is_withheld_from_records():
    data, count = screen({"action": "x", "actor": "device-1", "email": "chan@example.hk", "nested": {"name_en": "CHAN Tai Man"},
                          "to": "+85291234567", "note": "write to chan@example.hk", "when": "2026-12-02", "serial": "1234567890"})
    assert count == 4
    assert data == {"action": "x", "actor": "device-1", "email": WITHHELD, "nested": {"name_en": WITHHELD}, "to": WITHHELD,
                    "note": WITHHELD, "when": "2026-12-02", "serial": "1234567890"}

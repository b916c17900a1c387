"""The audit ledger's hashes and their verification: pure functions, no I/O.

A record is the audited CloudEvent's content (`id`, `source`, `type`, `subject`, `time`, `data`; not its trace
context), appended at a sequence number `seq` (1, 2, 3, ... with no gap):

    leaf[n]  = SHA-256(canonical(record[n]))
    chain[n] = SHA-256(chain[n-1] || leaf[n]),  chain[0] = 32 zero bytes

`canonical` is sorted-key compact JSON in UTF-8 (`json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`): audit records hold strings, integers, booleans and nulls only (ids, outcomes, counts), for
which it is the same bytes as RFC 8785 (JCS) would give. The leaf does not include `seq`, so a record moved to
another place keeps its leaf and only the chain shows where it belongs.

A checkpoint is a compact JWS (ES256, typ `harbour-audit-checkpoint+jwt`) over {iss, log, size, head, time, iat}:
the log of `size` records ended in chain hash `head` (hex) at `time`. Verification (`verify_log`) walks the records
in the order given and stops at the first that was changed, removed or reordered, then checks every checkpoint's
signature and that the log it covers ends in the head it signed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from libs.tokens.jws import InvalidToken, unverified_header, verify

GENESIS = bytes(32)
CHECKPOINT_TYP = "harbour-audit-checkpoint+jwt"
LOG_NAME = "harbour-audit"
# What a record keeps of an audit CloudEvent.
RECORD_FIELDS = ("id", "source", "type", "subject", "time", "data")


def canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def leaf_hash(record: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonical(record)).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(previous + leaf).digest()


def record_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """The record of an audit CloudEvent given as its JSON object (what `CloudEvent.model_dump(mode="json")` gives)."""
    return {name: event.get(name) for name in RECORD_FIELDS}


@dataclass(frozen=True)
class Entry:
    """One appended record as stored: its place, content and hashes (hex)."""

    seq: int
    record: dict[str, Any]
    leaf: str
    chain: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def append(head_seq: int, head_chain: bytes, records: Iterable[dict[str, Any]]) -> list[Entry]:
    """The entries that `records` become after a log of `head_seq` records ending in `head_chain`."""
    entries = []
    seq, previous = head_seq, head_chain
    for record in records:
        leaf = leaf_hash(record)
        previous = chain_hash(previous, leaf)
        seq += 1
        entries.append(Entry(seq, record, leaf.hex(), previous.hex()))
    return entries


def checkpoint_claims(*, issuer: str, size: int, head: str, time: str, iat: int) -> dict[str, Any]:
    return {"iss": issuer, "log": LOG_NAME, "size": size, "head": head, "time": time, "iat": iat}


@dataclass(frozen=True)
class Problem:
    """What verification found first: `kind` is changed, removed, reordered or checkpoint; `seq` the record's."""

    kind: str
    seq: int
    detail: str


@dataclass
class Report:
    size: int = 0
    head: str = GENESIS.hex()
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The first record found changed, removed or reordered (a bad checkpoint only when no record is)."""
        records = [p for p in self.problems if p.kind != "checkpoint"]
        return (records or self.problems or [None])[0]

    def as_json(self) -> dict[str, Any]:
        first = self.first
        return {"ok": self.ok, "size": self.size, "head": self.head, "checkpoints_verified": self.checkpoints,
                "first_problem": asdict(first) if first else None, "problems": [asdict(p) for p in self.problems]}


def _hex(value: Any) -> bytes | None:
    try:
        return bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        return None


def verify_records(entries: list[Mapping[str, Any]]) -> tuple[list[bytes], Problem | None]:
    """Walk `entries` (dicts with seq, record, leaf, chain) in the order given.

    Returns the chain hashes recomputed up to the first problem (index n-1 holds chain[n]) and that problem."""
    chains: list[bytes] = []
    previous = GENESIS
    stored_chains = {e.get("chain"): e.get("seq") for e in entries}
    for index, entry in enumerate(entries):
        expected = index + 1
        seq = entry.get("seq")
        if not isinstance(seq, int) or seq > expected:
            missing = expected if not isinstance(seq, int) else f"{expected}" + (f"-{seq - 1}" if seq - 1 > expected else "")
            return chains, Problem("removed", expected, f"record {missing} is missing: the next record found is {seq}")
        if seq < expected:
            return chains, Problem("reordered", seq, f"record {seq} appears again after record {expected - 1}")
        try:
            leaf = leaf_hash(entry["record"])
        except (KeyError, TypeError, ValueError):
            return chains, Problem("changed", seq, f"record {seq} has no readable content")
        if _hex(entry.get("leaf")) != leaf:
            return chains, Problem("changed", seq, f"record {seq}'s content does not match its leaf hash")
        computed = chain_hash(previous, leaf)
        stored = _hex(entry.get("chain"))
        if stored != computed:
            return chains, _misplaced(entries, index, leaf, stored, computed, stored_chains)
        chains.append(computed)
        previous = computed
    return chains, None


def _misplaced(entries: list[Mapping[str, Any]], index: int, leaf: bytes, stored: bytes | None, computed: bytes,
               stored_chains: dict[Any, Any]) -> Problem:
    """The record at `index` is intact but does not follow its predecessor: say why, as far as the hashes tell."""
    seq = index + 1
    if stored is not None:
        if chain_hash(GENESIS, leaf) == stored:
            return Problem("reordered", seq, f"record {seq} was appended first, before record 1")
        for chain, other in stored_chains.items():
            before = _hex(chain)
            if before is not None and other != seq and chain_hash(before, leaf) == stored:
                return Problem("reordered", seq, f"record {seq} was appended right after the record now at {other}")
    following = entries[index + 1] if index + 1 < len(entries) else None
    if following is not None and _hex(following.get("leaf")) is not None \
            and chain_hash(computed, _hex(following.get("leaf"))) == _hex(following.get("chain")):  # type: ignore[arg-type]
        return Problem("changed", seq, f"record {seq}'s chain hash was altered (the next record still follows the true one)")
    return Problem("removed", seq, f"record {seq} does not follow record {seq - 1}: a record before it was removed "
                                   "(and the rest renumbered), or its chain hash altered")


def verify_checkpoint(jws: str, keys: Mapping[str, ec.EllipticCurvePublicKey], issuer: str | None = None) -> dict[str, Any]:
    """The checkpoint's verified claims; InvalidToken when its signature, key or type is wrong."""
    kid = unverified_header(jws).get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken(f"the checkpoint is signed by an unknown key {kid!r}")
    claims = verify(jws, key, issuer=issuer, require=("iat", "size", "head"), typ=CHECKPOINT_TYP)
    if claims.get("log") != LOG_NAME or not isinstance(claims.get("size"), int) or _hex(claims.get("head")) is None:
        raise InvalidToken("not an audit checkpoint")
    return claims


def verify_log(entries: Iterable[Mapping[str, Any]], checkpoints: Iterable[Mapping[str, Any]],
               keys: Mapping[str, ec.EllipticCurvePublicKey], issuer: str | None = None) -> Report:
    """Every record's leaf and chain hash and sequence, then every checkpoint (dicts with `jws`) against the log."""
    entries = list(entries)
    chains, problem = verify_records(entries)
    report = Report(size=len(entries), head=(chains[-1] if chains else GENESIS).hex())
    if problem is not None:
        report.problems.append(problem)
    record_problem = problem
    for checkpoint in sorted(checkpoints, key=lambda c: c.get("size") or 0):
        stated = checkpoint.get("size")
        try:
            claims = verify_checkpoint(str(checkpoint.get("jws")), keys, issuer)
        except InvalidToken as exc:
            report.problems.append(Problem("checkpoint", stated if isinstance(stated, int) else 0,
                                           f"the checkpoint at size {stated}: {exc}"))
            continue
        size, head = claims["size"], claims["head"]
        if size > len(entries):
            if record_problem is None:
                record_problem = Problem("removed", len(entries) + 1,
                                         f"records {len(entries) + 1}-{size} are missing: the checkpoint at size {size} covers them")
                report.problems.append(record_problem)
            continue
        if size == 0:
            report.checkpoints += head == GENESIS.hex()
            continue
        if size <= len(chains):
            if chains[size - 1].hex() != head:
                if record_problem is None:
                    record_problem = Problem("changed", size, f"the log up to record {size} does not end in the head its "
                                             "checkpoint signed: a record up to it was changed and the chain recomputed")
                    report.problems.append(record_problem)
                continue
            report.checkpoints += 1
    return report


def public_keys(jwks: Mapping[str, Any]) -> dict[str, ec.EllipticCurvePublicKey]:
    """A JWKS's EC P-256 keys by kid."""
    from jwt.algorithms import ECAlgorithm

    keys = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") == "EC" and isinstance(jwk.get("kid"), str):
            key = ECAlgorithm.from_jwk(json.dumps(jwk))
            if isinstance(key, ec.EllipticCurvePublicKey):
                keys[jwk["kid"]] = key
    return keys

"""Released fields with their provenance, in the shape of OpenID Connect for Identity Assurance 1.0 (`verified_claims`).

A release (and a standing consent's update) carries, beside `fields` (every
released value, as before):

- `verified_claims`: a list, one element per way and time of verification,
  each `{"verification": {"trust_framework", "time", "evidence": [...]}, "claims": {...}}`
  (OIDC4IDA §5: `trust_framework` required; `time` of the verification;
  `evidence` what it rested on). Fields proofed at a kiosk have evidence
  `{"type": "document", "method": "pipp", "time", "document_details": {"type": "idcard"}}`
  (physical in-person proofing of the identity card); a phone number or
  e-mail address confirmed by a one-time code has `{"type": "one_time_code",
  "channel": "sms"|"email", "time"}` (Harbour ID's own evidence type: the
  specification defines none for possession of an address).
- `provenance`: for every released field, `{"method": "in_person" |
  "one_time_code" | "self_declared", "time", "channel"?}`. Self-declared
  fields are not in `verified_claims` (OIDC4IDA: unverified claims are plain
  claims), only in `fields` and here.
"""

from __future__ import annotations

from typing import Any

TRUST_FRAMEWORK = "harbour_id"


def _evidence(source: dict[str, str]) -> dict[str, Any]:
    if source["method"] == "in_person":
        return {"type": "document", "method": "pipp", "time": source["time"], "document_details": {"type": "idcard"}}
    return {"type": "one_time_code", "channel": source.get("channel", ""), "time": source["time"]}


def verified_claims(values: dict[str, str], provenance: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The verified fields grouped by how and when they were verified (self-declared ones left out)."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, value in values.items():
        source = provenance.get(name)
        if source is None or source["method"] == "self_declared":
            continue
        key = (source["method"], source["time"], source.get("channel", ""))
        group = groups.setdefault(key, {"verification": {"trust_framework": TRUST_FRAMEWORK, "time": source["time"],
                                                         "evidence": [_evidence(source)]}, "claims": {}})
        group["claims"][name] = value
    return list(groups.values())


def released_claims(values: dict[str, str], provenance: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What a release token says about its fields: the values, verified_claims, and each field's provenance."""
    return {"fields": values, "verified_claims": verified_claims(values, provenance),
            "provenance": {name: provenance[name] for name in values if name in provenance}}

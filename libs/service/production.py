"""Production mode: what a process outside the sandbox refuses to start with.

`HARBOUR_SANDBOX=true` (the dev stack, the tests' platform, a development
cluster) is the sandbox: citizens may self-register, anyone may register a
client (auth decides, services/auth/callers.py), and the development
conveniences below are allowed. Anything else is production mode, the
default: every process checks its whole environment when it reads its
settings (`ServiceSettings.from_env`, before it opens a connection) and
refuses to start, naming the variable, when it finds

- a dev-only switch on: `HARBOUR_OUTBOUND_ALLOW_LOOPBACK` (agencies'
  callbacks and clients' `jwks_uri` on the process's own loopback, over plain
  http);
- a cap on the retention of Kafka topics (`HARBOUR_KAFKA_RETENTION_CAP_MS`):
  the local broker's workaround would let a lagging consumer lose events;
- an issuer that is not https (`HARBOUR_ISSUER`; the dev default is
  `http://127.0.0.1:8000`): every token, device proof and discovery document
  names it;
- a published development secret in any `HARBOUR_*` variable: the
  development cluster's values (deploy/k8s/overlays/dev) carry the marker
  `DEV-ONLY`, in the clear or base64url-encoded (hash key, KEKs, admin token,
  HSM PIN, database passwords inside a URI), and its two sealing key pairs
  are recognised by their public point (a private or a public JWK).

The local dev stack's own secrets are random per `.dev/` folder
(libs/devstack/secrets.py), known to nobody else, and not refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from .settings import DEFAULT_ISSUER, SettingsError, parse_bool, parse_url

# Read on every outbound check by libs/outbound (its one setting); here only to refuse it outside the sandbox.
OUTBOUND_ALLOW_LOOPBACK = "OUTBOUND_ALLOW_LOOPBACK"

# What every published development value carries (deploy/k8s/overlays/dev: "everything marked DEV-ONLY is public").
DEV_MARKER = "DEV-ONLY"
# The development cluster's sealing key pairs (auth's, formfill's, notify's): their private scalars are derived from public
# strings, so anyone can recompute them. Their public point's x coordinate is in both halves' JWKs.
PUBLISHED_DEV_KEYS = {
    "asgDSpYTmL6BUwz9J7suXjvlMr-_GbLCoMFuv4fnSSc": "the development cluster's auth sealing key",
    "tWL2y8mTe2hMnAwGeJ46-PdCgiF4CEHpnVZzzfq5-Xw": "the development cluster's formfill sealing key",
    "CmWjxCQ8ZLteTOXxgzc9XbP1NmcXlQi7gjCUSJfRd7Y": "the development cluster's notify sealing key",
}

_BASE64URL_RUN = re.compile(r"[A-Za-z0-9_-]{11,}")


class ProductionRefused(SettingsError):
    """Production mode found development configuration: the process refuses to start."""

    def __init__(self, refusals: dict[str, str]) -> None:
        self.variables = tuple(refusals)
        details = "; ".join(f"{variable}: {why}" for variable, why in refusals.items())
        super().__init__(f"production mode (HARBOUR_SANDBOX is not true) refuses development configuration: {details}")


def _carries_marker(value: str) -> bool:
    if DEV_MARKER in value.upper():
        return True
    for run in _BASE64URL_RUN.findall(value):
        try:
            decoded = base64.urlsafe_b64decode(run + "=" * (-len(run) % 4))
        except (binascii.Error, ValueError):
            continue
        if DEV_MARKER.encode() in decoded.upper():
            return True
    return False


def _published_secret(value: str) -> str | None:
    """Why `value` is a published development secret, or None."""
    for x, what in PUBLISHED_DEV_KEYS.items():
        if x in value:
            return f"holds {what}, which is public"
    if _carries_marker(value):
        return f"holds a published development value (marked {DEV_MARKER})"
    return None


def production_refusals(environ: Mapping[str, str]) -> dict[str, str]:
    """Variable → why production mode refuses it; empty when the environment is fit for production."""
    refusals: dict[str, str] = {}
    loopback = environ.get(f"HARBOUR_{OUTBOUND_ALLOW_LOOPBACK}")
    if loopback is not None and parse_bool(loopback):
        refusals[f"HARBOUR_{OUTBOUND_ALLOW_LOOPBACK}"] = "loopback callbacks and jwks_uri are for the dev stack and tests only"
    cap = environ.get("HARBOUR_KAFKA_RETENTION_CAP_MS", "").strip()
    if cap not in ("", "0"):
        refusals["HARBOUR_KAFKA_RETENTION_CAP_MS"] = ("shortening topics' retention is for the local broker only: a consumer "
                                                     "away longer than the cap would lose events (deploy/k8s/base/kafka/topics.yaml)")
    issuer = parse_url(environ.get("HARBOUR_ISSUER", DEFAULT_ISSUER))
    if not issuer.startswith("https://"):
        refusals["HARBOUR_ISSUER"] = f"must be the gateway's https URL, not {issuer}"
    for variable in sorted(environ):
        if variable.startswith("HARBOUR_") and variable not in refusals:
            why = _published_secret(environ[variable])
            if why:
                refusals[variable] = why
    return refusals


def refuse_development_configuration(environ: Mapping[str, str]) -> None:
    """Raise ProductionRefused naming every variable production mode refuses (the caller checked it is not the sandbox)."""
    refusals = production_refusals(environ)
    if refusals:
        raise ProductionRefused(refusals)

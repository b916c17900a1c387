"""Each setting's default is declared once, in code (`setting(...)`); docs/operations.md must say the same."""

from __future__ import annotations

import re
from pathlib import Path

from libs.service.settings import KafkaSecurity, ServiceSettings, declared_settings
from services.auth.settings import AuthSettings
from services.formfill.settings import FormfillSettings
from services.gateway.settings import GatewaySettings
from services.notify.settings import NotifySettings
from services.signing.ledger.service import LedgerSettings
from services.signing.settings import SigningSettings

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SETTINGS = (ServiceSettings, KafkaSecurity, GatewaySettings, AuthSettings, FormfillSettings, SigningSettings, NotifySettings,
            LedgerSettings)


def declared() -> dict[str, object]:
    # `{SERVICE}` variables are documented as HARBOUR_<SERVICE>_...
    return {name: default for cls in SETTINGS for name, default in declared_settings(cls, "<SERVICE>").items()}


def documented(known: set[str]) -> dict[str, str | None]:
    """Variable → the default the configuration table states (its first `literal`), None when it states none."""
    rows = [line for line in OPERATIONS.read_text().splitlines() if line.startswith("| `HARBOUR_")]
    table: dict[str, str | None] = {}
    for row in rows:
        variables, defaults = row.split("|")[1:3]
        names = re.findall(r"`([A-Z0-9_<>]+)`", variables)
        values = [segment.strip() for segment in defaults.split(" / ")]
        first = names[0]
        for position, name in enumerate(names):
            if name.startswith("_"):  # `HARBOUR_GATEWAY_RATE_PER_IP` / `_BURST_PER_IP`: a prefix of the first name
                parts = first.split("_")
                candidates = ["_".join(parts[:k]) + name for k in range(len(parts) - 1, 0, -1)]
                name = next((c for c in candidates if c in known), name)
            value = values[position] if position < len(values) else values[-1]
            literal = re.match(r"`([^`]*)`", value)
            table[name] = literal.group(1) if literal else ("" if value.startswith("empty") else None)
    return table


def same(doc: str, code: object) -> bool:
    if isinstance(code, bool):
        return doc == str(code).lower()
    if isinstance(code, int | float):
        return re.fullmatch(r"[0-9.]+", doc) is not None and float(doc) == float(code)
    return doc == code


def test_every_setting_is_documented_with_its_declared_default():
    code = declared()
    docs = documented(set(code))
    missing = sorted(name for name in code if name not in docs)
    assert not missing, f"settings missing from docs/operations.md: {missing}"
    for name, default in code.items():
        if default in (None, "", 0, (), frozenset()):
            continue  # none, or one computed per service (ports, database names): the docs describe it in words
        assert docs[name] is not None and same(docs[name], default), \
            f"{name}: docs/operations.md says {docs[name]!r}, the code declares {default!r}"


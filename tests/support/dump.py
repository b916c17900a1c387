"""A database dump searched for one citizen: in the clear, and in every sealed blob the services' own keys open.

What an attacker holding a dump and every service key would try: each
document of each collection of each service database is walked field by
field (bytes holding JSON, like the outbox's events, are parsed and walked
too). A field-level sealed record (libs/crypto FieldCipher: kid, wrapped_key,
fields) is tried with every service's keyring under every record id the
document suggests (its `_id`, the scoped ids the services use, and every
string in the document); a compact JWE with the services' private sealing
keys. Whatever opens, and every string in the clear (JWT payloads decoded),
is searched for the citizen's values.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from libs.crypto import unseal
from libs.crypto.fields import DecryptionError, FieldCipher
from libs.crypto.keyring import Keyring

from .database import mongo

SERVICES = ("auth", "formfill", "notify", "signing")
PREFIXES = ("", "approval:", "request.", "consent.")


def service_keys(platform) -> tuple[dict[str, FieldCipher], list[dict]]:
    """Every service's field cipher and the private sealing keys (auth's, formfill's), from the services' environment."""
    env = platform.env()
    ciphers = {name: FieldCipher(Keyring.from_env_value(env[f"HARBOUR_{name.upper()}_KEK"])) for name in SERVICES}
    sealing = [json.loads(env[f"HARBOUR_{name}_SEALING_KEY"]) for name in ("AUTH", "FORMFILL")]
    return ciphers, sealing


def _is_sealed_record(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("kid"), str) and "wrapped_key" in value and "fields" in value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _jwt_payload(text: str) -> str | None:
    parts = text.split(".")
    if len(parts) != 3:
        return None
    try:
        return base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class Sweep:
    def __init__(self, ciphers: dict[str, FieldCipher], sealing: list[dict], values: list[str]) -> None:
        self.ciphers, self.sealing, self.values = ciphers, sealing, [v for v in values if v]
        self.found: list[str] = []
        self.opened = 0

    def _look(self, where: str, text: str) -> None:
        for candidate in (text, _jwt_payload(text) or ""):
            for value in self.values:
                if value in candidate:
                    self.found.append(f"{where}: {value!r}")

    def _open(self, where: str, sealed: dict, record_ids: set[str]) -> None:
        for service, cipher in self.ciphers.items():
            for record_id in record_ids:
                try:
                    opened = cipher.decrypt_record(sealed, record_id=record_id)
                except (DecryptionError, ValueError, TypeError):
                    continue
                self.opened += 1
                for name, text in opened.items():
                    self._walk(f"{where} (opened by {service} as {record_id}).{name}", text, record_ids)
                return

    def _walk(self, where: str, value: Any, record_ids: set[str]) -> None:
        if _is_sealed_record(value):
            self._open(where, value, record_ids)
        if isinstance(value, dict):
            for key, item in value.items():
                self._walk(f"{where}.{key}", item, record_ids)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._walk(f"{where}[{i}]", item, record_ids)
        elif isinstance(value, bytes):
            try:
                parsed = json.loads(value)
            except (ValueError, UnicodeDecodeError):
                return
            self._walk(f"{where}<json>", parsed, record_ids | set(_strings(parsed)))
        elif isinstance(value, str):
            self._look(where, value)
            if value.count(".") == 4 and len(value) > 100:  # a compact JWE: try the services' private keys
                for key in self.sealing:
                    try:
                        opened = unseal(value, key)
                    except Exception:  # noqa: BLE001 - not ours, or not a JWE at all
                        continue
                    self.opened += 1
                    self._walk(f"{where} (unsealed)", opened, record_ids)

    def document(self, where: str, doc: dict) -> None:
        strings = {s for s in _strings(doc) if 0 < len(s) < 200 and "|" not in s}
        record_ids = {f"{prefix}{doc['_id']}" for prefix in PREFIXES if isinstance(doc.get("_id"), str)} | strings
        self._walk(where, doc, {r for r in record_ids if r and "|" not in r})


async def sweep(platform, values: list[str]) -> Sweep:
    """Every document of every service database, searched for `values` in the clear and in whatever opens."""
    ciphers, sealing = service_keys(platform)
    found = Sweep(ciphers, sealing, values)
    async with mongo(platform.infra.mongo_uri) as client:
        names = [n for n in await client.list_database_names() if n.startswith(platform.stack.config.db_prefix)]
        for name in names:
            db = client[name]
            for collection in await db.list_collection_names():
                async for doc in db[collection].find():
                    found.document(f"{name}.{collection}/{doc.get('_id')}", doc)
    return found

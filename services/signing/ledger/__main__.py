"""Operator commands for signing's audit ledger, run with the signing service's environment (docs/operations.md):

  python -m services.signing.ledger verify [--file ledger.jsonl] [--jwks FILE_OR_URL]
  python -m services.signing.ledger export FILE

`verify` reads the log and its checkpoints (from signing's database, or from a file `export` wrote) and checks
every record's leaf and chain hash, the sequence's continuity, and every checkpoint's signature and head. It prints
a JSON report on stdout, and exits 0 when everything holds; 1 naming the first record that was changed, removed or
reordered (or the checkpoint whose signature fails); 2 when it could not read what it was to check.

The checkpoints' keys: `--jwks` (a JWKS file, or the URL of /v1/signing/jwks, e.g. through the gateway: what an
outside verifier uses); without it, signing's own export keys from its database, opened with HARBOUR_SIGNING_KEK.

`export` writes the log and checkpoints as JSON lines ({"checkpoint": ...} then {"entry": ...} per line), for
verifying elsewhere or keeping a copy outside the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from libs.service.settings import ServiceSettings, env
from libs.store import create_client

from .chain import public_keys, verify_log
from .store import read_checkpoints, read_log


def _read_file(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    entries, checkpoints = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        item = json.loads(line)
        if "checkpoint" in item:
            checkpoints.append(item["checkpoint"])
        elif "entry" in item:
            entries.append(item["entry"])
        else:
            raise ValueError(f"line {number}: neither an entry nor a checkpoint")
    return entries, checkpoints


def _jwks(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as answer:  # noqa: S310 (an operator's own URL)
            return json.loads(answer.read())
    return json.loads(Path(source).read_text())


async def _database_keys(settings: ServiceSettings) -> dict[str, Any]:
    from libs.crypto import Keyring
    from libs.tokens.keystore import KeyStore

    from ..collections import EXPORT_KEYS

    client = create_client(settings.mongo_uri)
    try:
        keys = KeyStore(client, client[settings.database], Keyring.from_env_value(env("SIGNING_KEK", "")),
                        max_token_lifetime_s=0, collection=EXPORT_KEYS)
        return {"keys": [key.public_jwk() for key in await keys.published(fresh=True)]}
    finally:
        await client.close()


async def _from_database(settings: ServiceSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    client = create_client(settings.mongo_uri)
    try:
        db = client[settings.database]
        return await read_log(db), await read_checkpoints(db)
    finally:
        await client.close()


def verify(args: argparse.Namespace) -> int:
    settings = ServiceSettings.from_env("signing")
    try:
        entries, checkpoints = _read_file(Path(args.file)) if args.file else asyncio.run(_from_database(settings))
        jwks = _jwks(args.jwks) if args.jwks else asyncio.run(_database_keys(settings))
    except Exception as exc:
        print(f"cannot read the ledger or its keys: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    report = verify_log(entries, checkpoints, public_keys(jwks), issuer=args.issuer)
    print(json.dumps(report.as_json(), indent=2))
    if report.ok:
        print(f"audit ledger verified: {report.size} records, head {report.head}, "
              f"{report.checkpoints} checkpoints signed and matching", file=sys.stderr)
        return 0
    first = report.first
    assert first is not None
    print(f"AUDIT LEDGER FAILED VERIFICATION: {first.kind} at record {first.seq}: {first.detail}", file=sys.stderr)
    return 1


def export(args: argparse.Namespace) -> int:
    entries, checkpoints = asyncio.run(_from_database(ServiceSettings.from_env("signing")))
    with open(args.out, "w") as out:
        for checkpoint in checkpoints:
            out.write(json.dumps({"checkpoint": checkpoint}, separators=(",", ":")) + "\n")
        for entry in entries:
            out.write(json.dumps({"entry": entry}, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(json.dumps({"entries": len(entries), "checkpoints": len(checkpoints), "file": args.out}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.signing.ledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify the log against its hashes and signed checkpoints")
    check.add_argument("--file", help="a JSON-lines file `export` wrote (default: signing's database)")
    check.add_argument("--jwks", help="the checkpoints' keys: a JWKS file or URL (default: signing's database, with its KEK)")
    check.add_argument("--issuer", help="require the checkpoints' iss to be this (the platform's issuer URL)")
    dump = commands.add_parser("export", help="write the log and its checkpoints as JSON lines")
    dump.add_argument("out")
    args = parser.parse_args(argv)
    return verify(args) if args.command == "verify" else export(args)


if __name__ == "__main__":
    sys.exit(main())

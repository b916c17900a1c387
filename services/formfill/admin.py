"""Operator commands for formfill, run with the service's environment.

  python -m services.formfill.admin rewrap --reason "yearly KEK rotation" [--operator NAME]
      # after putting a new key first in HARBOUR_FORMFILL_KEK

Re-wraps the data key of every encrypted record (the vault, releases waiting
to be read, the purposes of requests and consent receipts) under the current
key-encryption key (the fields themselves are untouched), then reports how many records still
use an older key — zero means the old key can be removed from the ring.
An operator action: it needs `--reason` and the operator's name (`--operator`
or HARBOUR_OPERATOR); each batch of records moves in one transaction with its
audit record `keys.rewrap` (`operator:<name>`, the reason, the counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from libs.backbone.operator import add_operator_arguments, operator_actor, operator_context
from libs.crypto import FieldCipher
from libs.events.outbox import OUTBOX_INDEXES
from libs.store import apply_indexes, create_client

from .context import Formfill
from .settings import FormfillSettings
from .vault import rewrap_all


async def run(args: argparse.Namespace) -> dict:
    settings = FormfillSettings.from_env()
    actor = operator_actor(args)
    client = create_client(settings.service.mongo_uri)
    db = client[settings.service.database]
    try:
        await apply_indexes(db, OUTBOX_INDEXES)
        operator = operator_context(Formfill.source, settings, client, db)
        return await rewrap_all(db, FieldCipher(settings.keyring), operator, actor=actor, reason=args.reason)
    finally:
        await client.close()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.formfill.admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    add_operator_arguments(commands.add_parser("rewrap", help="re-wrap every record's data key under the current KEK"))
    return parser


def main() -> int:
    args = parser().parse_args()
    try:
        print(json.dumps(asyncio.run(run(args)), indent=2))
    except ValueError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Operator commands for formfill, run with the service's environment.

  python -m services.formfill.admin rewrap   # after putting a new key first in HARBOUR_FORMFILL_KEK

Re-wraps the data key of every encrypted record (the vault, releases waiting
to be read, the purposes of requests and consent receipts) under the current
key-encryption key (the fields themselves are untouched), then reports how many records still
use an older key — zero means the old key can be removed from the ring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from libs.crypto import FieldCipher
from libs.store import create_client

from .settings import FormfillSettings
from .vault import rewrap_all


async def run() -> dict:
    settings = FormfillSettings.from_env()
    client = create_client(settings.service.mongo_uri)
    try:
        return await rewrap_all(client[settings.service.database], FieldCipher(settings.keyring))
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.formfill.admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["rewrap"])
    parser.parse_args()
    print(json.dumps(asyncio.run(run()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
